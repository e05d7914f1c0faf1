//! The checks an uploaded batch of coupon codes passes before it reaches the pool: each code
//! trimmed, 1-64 characters with no control characters, at most 5,000 per upload; a code
//! repeated within the upload is kept once and reported. Pure, so the rules are unit-tested.

use std::collections::HashSet;

/// Most codes in one upload (a larger pool is uploaded in several requests).
pub const MAX_CODES_PER_UPLOAD: usize = 5_000;
/// Most codes in one promotion's pool.
pub const MAX_CODES_PER_ACTIVITY: i64 = 100_000;
/// Longest code, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// An upload's codes once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanCodes {
    /// Distinct codes, trimmed, in upload order.
    pub codes: Vec<String>,
    /// Codes given more than once in the upload (each named once).
    pub repeated: Vec<String>,
}

/// Checks `raw`; the error names the first offending code by its position.
pub fn clean(raw: &[String]) -> Result<CleanCodes, String> {
    if raw.is_empty() || raw.len() > MAX_CODES_PER_UPLOAD {
        return Err(format!(
            "codes must hold 1-{MAX_CODES_PER_UPLOAD} codes (upload a larger pool in parts)"
        ));
    }
    let mut seen = HashSet::with_capacity(raw.len());
    let mut repeated = Vec::new();
    let mut codes = Vec::with_capacity(raw.len());
    for (i, code) in raw.iter().enumerate() {
        let code = code.trim();
        if !(1..=MAX_CODE_CHARS).contains(&code.chars().count()) {
            return Err(format!(
                "codes[{i}] must be 1-{MAX_CODE_CHARS} characters once trimmed"
            ));
        }
        if code.chars().any(char::is_control) {
            return Err(format!("codes[{i}] holds a control character"));
        }
        if seen.insert(code) {
            codes.push(code.to_string());
        } else if !repeated.iter().any(|r| r == code) {
            repeated.push(code.to_string());
        }
    }
    Ok(CleanCodes { codes, repeated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn codes_are_trimmed_and_kept_once_with_repeats_reported() {
        let clean = clean(&strings(&[" A1 ", "B2", "A1", "a1", "B2", "B2"]));
        assert_eq!(
            clean,
            Ok(CleanCodes {
                codes: strings(&["A1", "B2", "a1"]),
                repeated: strings(&["A1", "B2"]),
            })
        );
    }

    #[test]
    fn empty_long_and_control_codes_are_refused_by_position() {
        assert_eq!(
            clean(&strings(&["ok", "   "])),
            Err("codes[1] must be 1-64 characters once trimmed".into())
        );
        let long = "x".repeat(MAX_CODE_CHARS + 1);
        assert!(clean(&[long]).is_err_and(|e| e.starts_with("codes[0]")));
        assert_eq!(
            clean(&strings(&["a\u{0}b"])),
            Err("codes[0] holds a control character".into())
        );
        assert!(clean(&["é".repeat(MAX_CODE_CHARS)]).is_ok());
    }

    #[test]
    fn an_upload_holds_one_to_the_most_codes() {
        assert!(clean(&[]).is_err());
        let most: Vec<String> = (0..MAX_CODES_PER_UPLOAD).map(|i| format!("C{i}")).collect();
        assert_eq!(
            clean(&most).map(|c| c.codes.len()),
            Ok(MAX_CODES_PER_UPLOAD)
        );
        let over: Vec<String> = (0..=MAX_CODES_PER_UPLOAD)
            .map(|i| format!("C{i}"))
            .collect();
        assert!(clean(&over).is_err());
    }
}
