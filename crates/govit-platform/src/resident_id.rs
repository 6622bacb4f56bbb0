//! The resident identity number (居民身份证号码), GB 11643-1999: 6-digit region, 8-digit birth
//! date, 3-digit sequence, check character. Personal data: never log one.

use chrono::NaiveDate;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: &[u8; 11] = b"10X98765432";

/// Checks the form, the birth date and the check character; the error says which is wrong
/// without repeating the number.
pub fn validate(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    if b.len() != 18 {
        return Err(format!("must be 18 characters, got {}", id.chars().count()));
    }
    if !b[..17].iter().all(u8::is_ascii_digit) || !(b[17].is_ascii_digit() || b[17] == b'X') {
        return Err("must be 17 digits and a digit or X".into());
    }
    let birth = NaiveDate::parse_from_str(&id[6..14], "%Y%m%d")
        .map_err(|_| "the birth date (characters 7 to 14) is not a date".to_string())?;
    if birth < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(birth)
        || birth > chrono::Utc::now().date_naive()
    {
        return Err("the birth date (characters 7 to 14) is out of range".into());
    }
    let sum: u32 = b[..17]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    if CHECK[(sum % 11) as usize] != b[17] {
        return Err("the check character is wrong".into());
    }
    Ok(())
}

/// Completes 17 digits with their check character: for tests and examples.
pub fn with_check_character(first17: &str) -> Option<String> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    Some(format!("{first17}{}", CHECK[(sum % 11) as usize] as char))
}

/// Region code and last four shown; the birth date and sequence hidden.
pub fn mask(id: &str) -> String {
    mask_middle(id, 6, 4)
}

/// A phone number with its first three and last four characters shown.
pub fn mask_phone(phone: &str) -> String {
    mask_middle(phone, 3, 4)
}

fn mask_middle(s: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(chars.len());
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i >= chars.len() - tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_example_verifies() {
        // The worked example of GB 11643-1999.
        assert!(validate("11010519491231002X").is_ok());
        assert_eq!(
            with_check_character("11010519491231002").as_deref(),
            Some("11010519491231002X")
        );
    }

    #[test]
    fn errors_name_the_part_that_is_wrong() {
        assert!(
            validate("110105194912310021")
                .unwrap_err()
                .contains("check character")
        );
        assert!(
            validate("110105194913310021")
                .unwrap_err()
                .contains("birth date")
        );
        assert!(
            validate("11010519491231002")
                .unwrap_err()
                .contains("18 characters")
        );
        assert!(
            validate("11010519491231002x")
                .unwrap_err()
                .contains("digit or X")
        );
    }

    #[test]
    fn masks_hide_the_middle() {
        assert_eq!(mask("11010519491231002X"), "110105********002X");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("123"), "***");
    }
}
