//! RFC 6455 framing for the server side, pure (no I/O): [`Decoder`] turns the bytes a client
//! sent into whole messages, with the frame and message size limit, continuations, masking
//! and the UTF-8 check; [`head`] and [`close_payload`] encode what the server writes.
//!
//! The decoder keeps only the bytes of a frame not yet complete (and a fragmented message's
//! payload so far); [`Decoder::trim`] gives that memory back once nothing is pending, so an
//! idle connection holds no read buffer at all.

use bytes::Bytes;
use bytestring::ByteString;

/// Frame opcodes (RFC 6455 section 5.2).
pub mod opcode {
    /// A continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text frame.
    pub const TEXT: u8 = 0x1;
    /// A binary frame.
    pub const BINARY: u8 = 0x2;
    /// A close frame.
    pub const CLOSE: u8 = 0x8;
    /// A ping.
    pub const PING: u8 = 0x9;
    /// A pong.
    pub const PONG: u8 = 0xA;
}

/// The longest frame head the server writes: 2 bytes, then a 64-bit length (never masked).
pub const MAX_HEAD: usize = 10;

/// A whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (continuations joined), valid UTF-8.
    Text(ByteString),
    /// A binary message (refused by `corral.v1`; its payload is not kept).
    Binary,
    /// A ping, with its payload to echo.
    Ping(Bytes),
    /// A pong, with the payload of the ping it answers.
    Pong(Bytes),
    /// The client is closing.
    Close,
}

/// A frame the client should not have sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame, or a message after its continuations, above the limit.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// A text message that is not UTF-8.
    #[error("text frame is not valid UTF-8")]
    InvalidUtf8,
    /// Anything else RFC 6455 forbids.
    #[error("protocol error: {0}")]
    Protocol(&'static str),
}

/// A parsed frame head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Payload length.
    len: usize,
    /// Bytes of the head itself.
    head_len: usize,
}

/// Parses the head at the start of `buf`; `None` when more bytes are needed.
fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head>, FrameError> {
    let [b0, b1, ..] = *buf else { return Ok(None) };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Protocol("reserved bits set"));
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    match opcode {
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
        opcode::CLOSE | opcode::PING | opcode::PONG => {
            if !fin {
                return Err(FrameError::Protocol("fragmented control frame"));
            }
            if b1 & 0x7F > 125 {
                return Err(FrameError::Protocol("control frame longer than 125 bytes"));
            }
        }
        _ => return Err(FrameError::Protocol("unknown opcode")),
    }
    if b1 & 0x80 == 0 {
        return Err(FrameError::Protocol("client frame not masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    // Refused before its payload is buffered: a large frame never costs its size in memory.
    let len = match usize::try_from(len) {
        Ok(len) if len <= max => len,
        _ => return Err(FrameError::TooLarge(max)),
    };
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len,
        head_len: at + 4,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// A fragmented message being joined.
struct Fragments {
    text: bool,
    payload: Vec<u8>,
}

/// Client bytes in, whole messages out.
pub struct Decoder {
    max: usize,
    /// Bytes read and not yet decoded: at most one frame's worth between reads.
    buf: Vec<u8>,
    /// Where the undecoded bytes start in `buf`.
    start: usize,
    fragments: Option<Fragments>,
}

impl Decoder {
    /// A decoder refusing frames and messages above `max` bytes.
    pub fn new(max: usize) -> Decoder {
        Decoder {
            max,
            buf: Vec::new(),
            start: 0,
            fragments: None,
        }
    }

    /// Adds bytes read from the client.
    pub fn extend(&mut self, input: &[u8]) {
        self.buf.extend_from_slice(input);
    }

    /// The next whole message in the bytes read so far; `None` when more are needed.
    pub fn next(&mut self) -> Result<Option<Message>, FrameError> {
        loop {
            let avail = &self.buf[self.start..];
            let Some(head) = parse_head(avail, self.max)? else {
                return Ok(None);
            };
            let end = head.head_len + head.len;
            if avail.len() < end {
                return Ok(None);
            }
            let mut payload = avail[head.head_len..end].to_vec();
            unmask(&mut payload, head.mask);
            self.start += end;
            if self.start == self.buf.len() {
                // Everything decoded: the buffer starts over (its memory kept until `trim`).
                self.buf.clear();
                self.start = 0;
            }
            if let Some(message) = self.frame(head, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// One complete frame; a message when it completes one.
    fn frame(&mut self, head: Head, payload: Vec<u8>) -> Result<Option<Message>, FrameError> {
        match head.opcode {
            opcode::PING => Ok(Some(Message::Ping(Bytes::from(payload)))),
            opcode::PONG => Ok(Some(Message::Pong(Bytes::from(payload)))),
            opcode::CLOSE => {
                if payload.len() == 1 {
                    return Err(FrameError::Protocol("close frame with a 1-byte payload"));
                }
                Ok(Some(Message::Close))
            }
            opcode::TEXT | opcode::BINARY => {
                if self.fragments.is_some() {
                    return Err(FrameError::Protocol(
                        "new message before the last one's final fragment",
                    ));
                }
                let text = head.opcode == opcode::TEXT;
                if head.fin {
                    return complete(text, payload).map(Some);
                }
                self.fragments = Some(Fragments { text, payload });
                Ok(None)
            }
            _ => {
                let Some(mut fragments) = self.fragments.take() else {
                    return Err(FrameError::Protocol("continuation without a message"));
                };
                if fragments.payload.len() + payload.len() > self.max {
                    return Err(FrameError::TooLarge(self.max));
                }
                fragments.payload.extend_from_slice(&payload);
                if !head.fin {
                    self.fragments = Some(fragments);
                    return Ok(None);
                }
                complete(fragments.text, fragments.payload).map(Some)
            }
        }
    }

    /// Gives back the read buffer's memory when no partial frame is pending (called when the
    /// connection is idle).
    pub fn trim(&mut self) {
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Bytes of memory the decoder holds for undecoded input.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

fn complete(text: bool, payload: Vec<u8>) -> Result<Message, FrameError> {
    if !text {
        return Ok(Message::Binary);
    }
    String::from_utf8(payload)
        .map(|s| Message::Text(ByteString::from(s)))
        .map_err(|_| FrameError::InvalidUtf8)
}

/// The head of a final, unmasked server frame with `opcode` and a payload of `len` bytes, and
/// how many of its bytes are used.
pub fn head(opcode: u8, len: usize) -> ([u8; MAX_HEAD], usize) {
    let mut head = [0u8; MAX_HEAD];
    head[0] = 0x80 | opcode;
    let used = if len < 126 {
        head[1] = len as u8;
        2
    } else if let Ok(len) = u16::try_from(len) {
        head[1] = 126;
        head[2..4].copy_from_slice(&len.to_be_bytes());
        4
    } else {
        head[1] = 127;
        head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (head, used)
}

/// A close frame's payload: the code, then the reason cut to the 123 bytes a control frame
/// leaves for it (at a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    Bytes::from(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A client frame, masked as RFC 6455 requires.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let (head, used) = head(opcode, payload.len());
        let mut frame = head[..used].to_vec();
        if !fin {
            frame[0] &= 0x7F;
        }
        frame[1] |= 0x80;
        frame.extend_from_slice(&mask);
        let mut body = payload.to_vec();
        unmask(&mut body, mask);
        frame.extend_from_slice(&body);
        frame
    }

    fn decode_all(decoder: &mut Decoder) -> Result<Vec<Message>, FrameError> {
        let mut out = Vec::new();
        while let Some(message) = decoder.next()? {
            out.push(message);
        }
        Ok(out)
    }

    const MASK: [u8; 4] = [1, 2, 3, 4];

    #[test]
    fn decodes_text_of_every_length_form() {
        for len in [0, 5, 125, 126, 65535, 65536, 70_000] {
            let text = "a".repeat(len);
            let mut decoder = Decoder::new(100_000);
            decoder.extend(&client_frame(true, opcode::TEXT, text.as_bytes(), MASK));
            assert_eq!(
                decode_all(&mut decoder),
                Ok(vec![Message::Text(text.into())]),
                "{len}"
            );
        }
    }

    #[test]
    fn joins_continuations_with_control_frames_between() {
        let mut bytes = client_frame(false, opcode::TEXT, b"hel", MASK);
        bytes.extend(client_frame(true, opcode::PING, b"p", MASK));
        bytes.extend(client_frame(false, opcode::CONTINUATION, b"lo ", MASK));
        bytes.extend(client_frame(
            true,
            opcode::CONTINUATION,
            "wörld".as_bytes(),
            MASK,
        ));
        let mut decoder = Decoder::new(1024);
        decoder.extend(&bytes);
        assert_eq!(
            decode_all(&mut decoder),
            Ok(vec![
                Message::Ping(Bytes::from_static(b"p")),
                Message::Text("hello wörld".into())
            ])
        );
    }

    #[test]
    fn refuses_what_rfc_6455_forbids() {
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (
                client_frame(true, opcode::TEXT, &[0xff, 0xfe], MASK),
                FrameError::InvalidUtf8,
            ),
            (
                client_frame(true, opcode::TEXT, &[b'a'; 11], MASK),
                FrameError::TooLarge(10),
            ),
            (
                [
                    client_frame(false, opcode::TEXT, b"123456", MASK),
                    client_frame(true, opcode::CONTINUATION, b"789012", MASK),
                ]
                .concat(),
                FrameError::TooLarge(10),
            ),
            (
                client_frame(true, opcode::CONTINUATION, b"x", MASK),
                FrameError::Protocol("continuation without a message"),
            ),
            (
                [
                    client_frame(false, opcode::TEXT, b"a", MASK),
                    client_frame(true, opcode::TEXT, b"b", MASK),
                ]
                .concat(),
                FrameError::Protocol("new message before the last one's final fragment"),
            ),
            (
                vec![0x81, 0x01, b'a'],
                FrameError::Protocol("client frame not masked"),
            ),
            (
                vec![0xC1, 0x80, 0, 0, 0, 0],
                FrameError::Protocol("reserved bits set"),
            ),
            (
                vec![0x83, 0x80, 0, 0, 0, 0],
                FrameError::Protocol("unknown opcode"),
            ),
            (
                client_frame(false, opcode::PING, b"", MASK),
                FrameError::Protocol("fragmented control frame"),
            ),
        ];
        for (bytes, expected) in cases {
            let mut decoder = Decoder::new(10);
            decoder.extend(&bytes);
            assert_eq!(decode_all(&mut decoder), Err(expected.clone()), "{bytes:?}");
        }
    }

    #[test]
    fn a_too_large_frame_is_refused_from_its_head_alone() {
        let mut decoder = Decoder::new(1000);
        // The head announces 1 MB; no payload has arrived.
        decoder.extend(&[0x81, 0xFF, 0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(decoder.next(), Err(FrameError::TooLarge(1000)));
    }

    #[test]
    fn binary_close_and_pong_are_reported() {
        let mut bytes = client_frame(true, opcode::BINARY, b"\x00\x01", MASK);
        bytes.extend(client_frame(true, opcode::PONG, b"\x00\x07", MASK));
        bytes.extend(client_frame(
            true,
            opcode::CLOSE,
            &close_payload(1000, "bye"),
            MASK,
        ));
        let mut decoder = Decoder::new(100);
        decoder.extend(&bytes);
        assert_eq!(
            decode_all(&mut decoder),
            Ok(vec![
                Message::Binary,
                Message::Pong(Bytes::from_static(b"\x00\x07")),
                Message::Close
            ])
        );
    }

    #[test]
    fn the_read_buffer_is_given_back_once_drained() {
        let mut decoder = Decoder::new(100_000);
        let frame = client_frame(true, opcode::TEXT, &[b'x'; 50_000], MASK);
        // Half a frame: it must be kept, trim or not.
        decoder.extend(&frame[..25_000]);
        assert_eq!(decoder.next(), Ok(None));
        decoder.trim();
        assert!(decoder.capacity() >= 25_000);
        decoder.extend(&frame[25_000..]);
        assert!(matches!(decoder.next(), Ok(Some(Message::Text(_)))));
        assert!(decoder.capacity() >= 50_000);
        decoder.trim();
        assert_eq!(decoder.capacity(), 0);
    }

    #[test]
    fn server_heads_and_close_payloads() {
        assert_eq!(
            head(opcode::TEXT, 5),
            ([0x81, 5, 0, 0, 0, 0, 0, 0, 0, 0], 2)
        );
        assert_eq!(head(opcode::TEXT, 300).1, 4);
        assert_eq!(head(opcode::TEXT, 70_000).1, 10);
        let payload = close_payload(4008, &"é".repeat(100));
        assert!(payload.len() <= 125);
        assert_eq!(&payload[..2], &4008u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                       cut in 0usize..512) {
            let mut decoder = Decoder::new(256);
            let cut = cut.min(bytes.len());
            decoder.extend(&bytes[..cut]);
            let _ = decode_all(&mut decoder);
            decoder.extend(&bytes[cut..]);
            let _ = decode_all(&mut decoder);
        }

        #[test]
        fn text_split_anywhere_decodes_whole(
            texts in proptest::collection::vec(".{0,300}", 1..5),
            mask in any::<[u8; 4]>(),
            step in 1usize..97,
        ) {
            let mut bytes = Vec::new();
            for text in &texts {
                bytes.extend(client_frame(true, opcode::TEXT, text.as_bytes(), mask));
            }
            let mut decoder = Decoder::new(100_000);
            let mut got = Vec::new();
            for chunk in bytes.chunks(step) {
                decoder.extend(chunk);
                got.extend(decode_all(&mut decoder).expect("valid frames"));
            }
            let want: Vec<Message> =
                texts.iter().map(|t| Message::Text(t.as_str().into())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
