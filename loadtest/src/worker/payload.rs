//! The message text the publishing scenarios send: `<sent_us> <stream> <seq> ` padded to the
//! configured size, so a receiver reads the delivery latency and the stream's order from it
//! (the raw peers echo it verbatim; Corral carries it as the message text).

/// The message text: `<sent_us> <stream> <seq> ` padded to the configured size (the raw
/// peers echo it verbatim; Corral carries it as the message text).
pub(super) fn payload(sent_us: u64, stream: &str, seq: u64, bytes: usize) -> String {
    let mut text = format!("{sent_us} {stream} {seq} ");
    if text.len() < bytes {
        text.extend(std::iter::repeat_n('x', bytes - text.len()));
    }
    text
}

/// Parses `<sent_us> <stream> <seq> ...`.
pub(super) fn parse_payload(text: &str) -> Option<(u64, &str, u64)> {
    let mut parts = text.splitn(4, ' ');
    let sent = parts.next()?.parse().ok()?;
    let stream = parts.next()?;
    let seq = parts.next()?.parse().ok()?;
    Some((sent, stream, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_at_the_requested_size() {
        let text = payload(1_700_000_000_000_000, "pub:3", 42, 100);
        assert_eq!(text.len(), 100);
        assert_eq!(
            parse_payload(&text),
            Some((1_700_000_000_000_000, "pub:3", 42))
        );
        assert_eq!(parse_payload("hello"), None);
    }
}
