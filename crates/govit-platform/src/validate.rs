//! Small validation rules shared by the services.

/// Identifiers and category codes: ASCII, 1 to 64 characters of `[A-Za-z0-9._-]` — the same
/// charset draw-v1 fixes, so anything stored here can enter a draw unchanged.
pub fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A human text of at most `max` characters that is not blank and has no control characters.
pub fn text_problem(s: &str, max: usize) -> Option<String> {
    if s.trim().is_empty() {
        Some("must not be empty".into())
    } else {
        optional_text_problem(s, max)
    }
}

/// Like [`text_problem`], but empty is fine.
pub fn optional_text_problem(s: &str, max: usize) -> Option<String> {
    if s.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// A plausible e-mail address: something@something.something, no spaces.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(char::is_whitespace)
}

/// A phone number as offices write them: digits with optional +, spaces and hyphens, 5 to 20
/// digits.
pub fn is_phone(s: &str) -> bool {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    (5..=20).contains(&digits)
        && s.chars()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || c == '-' || c == ' ' || (c == '+' && i == 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_draw_charset() {
        assert!(is_code("e-gov.network_2"));
        assert!(!is_code(""));
        assert!(!is_code(&"a".repeat(65)));
        assert!(!is_code("网络"));
        assert!(!is_code("a b"));
    }

    #[test]
    fn contacts_are_checked() {
        assert!(is_email("a@b.cn"));
        assert!(!is_email("a@b"));
        assert!(is_phone("+86 991-1234567"));
        assert!(!is_phone("call me"));
        assert_eq!(text_problem("  ", 10).as_deref(), Some("must not be empty"));
        assert!(text_problem("ok", 10).is_none());
        assert!(text_problem("toolong", 3).is_some());
    }
}
