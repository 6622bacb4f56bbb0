//! Small validation rules shared by the services.

/// Identifiers and category codes: ASCII, 1 to 64 characters of `[A-Za-z0-9._-]` — the same
/// charset draw-v1 fixes, so anything stored here can enter a draw unchanged.
pub fn is_code(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id of a resource name `{collection}/{id}`, the id a code.
pub fn resource_id<'a>(name: &'a str, collection: &str) -> Option<&'a str> {
    name.strip_prefix(collection)?
        .strip_prefix('/')
        .filter(|id| is_code(id))
}

/// The two ids of `{collection}/{id}/{child}/{child_id}`, both codes.
pub fn child_ids<'a>(name: &'a str, collection: &str, child: &str) -> Option<(&'a str, &'a str)> {
    let (parent, rest) = name
        .strip_prefix(collection)?
        .strip_prefix('/')?
        .split_once('/')?;
    let id = rest.strip_prefix(child)?.strip_prefix('/')?;
    (is_code(parent) && is_code(id)).then_some((parent, id))
}

/// Characters that reorder how text is displayed (bidirectional embeddings, overrides and
/// isolates): `report\u{202e}fdp.exe` shows as `reportexe.pdf`.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// The one rule for human text, applied by every service where text enters: at most `max`
/// characters, not blank, no control characters (tab, CR and LF aside; U+0000 included) and
/// no bidirectional controls. Text one service accepts is never refused by the next.
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
    } else if s
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        Some("must not contain control characters".into())
    } else if s.chars().any(is_bidi_control) {
        Some("must not contain bidirectional control characters".into())
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

/// Whether free text carries what looks like personal data: a resident ID number (GB 11643,
/// with a valid check character) or a mainland mobile number (11 digits from 13 to 19, also
/// after 86 or 0086), however spaced or hyphenated, in ASCII or full-width digits as Chinese
/// input methods type them. Text that goes where it cannot be erased — the registry's
/// append-only log, a draw's record — or is published (notices) is refused when it does.
pub fn personal_data_problem(s: &str) -> Option<String> {
    // Full-width digits, hyphens and spaces read as their ASCII forms.
    let chars: Vec<char> = s
        .chars()
        .map(|c| match c {
            '０'..='９' | 'ｘ' | 'Ｘ' | '－' => {
                char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c)
            }
            '\u{3000}' => ' ',
            _ => c,
        })
        .collect();
    // Digits joined across the spaces and hyphens people write numbers with.
    let mut runs: Vec<String> = vec![String::new()];
    for (i, c) in chars.iter().enumerate() {
        let joins = matches!(c, ' ' | '-')
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        match c {
            '0'..='9' => runs.last_mut().into_iter().for_each(|r| r.push(*c)),
            'x' | 'X' => runs.last_mut().into_iter().for_each(|r| r.push('X')),
            _ if joins => {}
            _ => runs.push(String::new()),
        }
    }
    let is_mobile =
        |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    for run in runs.iter().filter(|r| !r.is_empty()) {
        let has_id = run.len() >= 18
            && (0..=run.len() - 18).any(|i| crate::resident_id::validate(&run[i..i + 18]).is_ok());
        if has_id {
            return Some("must not contain an ID number".into());
        }
        let digits = run.trim_end_matches('X');
        let national = digits
            .strip_prefix("0086")
            .or_else(|| digits.strip_prefix("86"));
        if is_mobile(digits) || national.is_some_and(is_mobile) {
            return Some("must not contain a phone number".into());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_data_is_found_however_it_is_written() {
        let id = crate::resident_id::with_check_character("11010519491231002").unwrap();
        assert!(personal_data_problem(&format!("witness Zhang San id {id}")).is_some());
        assert!(personal_data_problem("call 13812345678 please").is_some());
        assert!(personal_data_problem("call 138-1234-5678").is_some());
        assert!(personal_data_problem("call 138 1234 5678").is_some());
        assert!(personal_data_problem("+86 13812345678").is_some());
        assert!(personal_data_problem("+86 139 1234 5678").is_some());
        assert!(personal_data_problem("call 008613912345678").is_some());
        assert!(personal_data_problem("电话１３９１２３４５６７８").is_some());
        let lower = id.to_lowercase();
        assert!(personal_data_problem(&format!("lead {lower} signed")).is_some());
        let spaced = format!("{} {} {}", &id[..6], &id[6..14], &id[14..]);
        assert!(personal_data_problem(&format!("id: {spaced}.")).is_some());
        // Case numbers, articles, amounts and landlines are not.
        assert!(personal_data_problem("case 2026-0417, loss of 3,500,000 fen").is_none());
        assert!(personal_data_problem("Government Procurement Law, art. 41").is_none());
        assert!(personal_data_problem("landline 0991-2345678").is_none());
        assert!(personal_data_problem("code 11010519491231002 with no check character").is_none());
        // Dice, lottery numbers and beacon values are not personal data.
        assert!(personal_data_problem("骰子 3-5-6").is_none());
        assert!(personal_data_problem("lottery 2026137: 03 11 17 22 28 31 + 09").is_none());
        assert!(personal_data_problem("beacon 4f8a93c1d2e7").is_none());
        assert!(
            personal_data_problem("12345678901").is_none(),
            "not a mobile prefix"
        );
        assert!(personal_data_problem("").is_none());
    }

    #[test]
    fn the_text_rule_refuses_controls_and_bidi() {
        assert!(text_problem("fine\ttext\nhere", 100).is_none());
        assert!(text_problem("nul\u{0}", 100).is_some());
        assert!(text_problem("vt\u{b}", 100).is_some());
        assert!(text_problem("report\u{202e}fdp.exe", 100).is_some());
        assert!(text_problem("   ", 100).is_some());
    }

    #[test]
    fn resource_names_give_their_ids() {
        assert_eq!(
            resource_id("projects/2026-0007", "projects"),
            Some("2026-0007")
        );
        assert_eq!(resource_id("projects/", "projects"), None);
        assert_eq!(resource_id("projectsx/1", "projects"), None);
        assert_eq!(resource_id("projects/a/b", "projects"), None);
        assert_eq!(
            child_ids("reviews/rv-1/invitations/e-1", "reviews", "invitations"),
            Some(("rv-1", "e-1"))
        );
        assert_eq!(
            child_ids("reviews/rv-1/opinions/e-1", "reviews", "invitations"),
            None
        );
        assert_eq!(
            child_ids("reviews/rv 1/invitations/e-1", "reviews", "invitations"),
            None
        );
    }

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
