//! The unified social credit code of an organisation (统一社会信用代码), GB 32100-2015.

use std::fmt;

const ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A credit code whose characters and check character are right.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreditCode(String);

impl CreditCode {
    /// Parses a code; the error says what is wrong, for a field violation.
    pub fn parse(input: &str) -> Result<CreditCode, String> {
        let code = input.trim();
        if code.len() != 18 {
            return Err(format!(
                "must be 18 characters, got {}",
                code.chars().count()
            ));
        }
        let mut values = [0u32; 18];
        for (i, c) in code.bytes().enumerate() {
            values[i] = ALPHABET.iter().position(|&a| a == c).ok_or_else(|| {
                format!(
                    "character {} is not allowed (digits and upper-case letters except I, O, Z, S, V)",
                    i + 1
                )
            })? as u32;
        }
        let sum: u32 = WEIGHTS.iter().zip(values).map(|(w, v)| w * v).sum();
        let check = (31 - sum % 31) % 31;
        if values[17] != check {
            return Err(format!(
                "check character is wrong: expected {}",
                ALPHABET[check as usize] as char
            ));
        }
        Ok(CreditCode(code.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Completes 17 characters with their check character: for tests and examples.
pub fn with_check_character(first17: &str) -> Option<String> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (i, c) in bytes.iter().enumerate() {
        sum += WEIGHTS[i] * ALPHABET.iter().position(|a| a == c)? as u32;
    }
    let check = (31 - sum % 31) % 31;
    Some(format!("{first17}{}", ALPHABET[check as usize] as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_codes_are_accepted() {
        // Codes printed on public business licences.
        for code in ["91350100M000100Y43", "91110000600037341L"] {
            assert!(CreditCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn a_changed_character_is_caught() {
        assert!(
            CreditCode::parse("91350100M000100Y44")
                .unwrap_err()
                .contains("check character")
        );
        assert!(
            CreditCode::parse("91350100M000100Y4")
                .unwrap_err()
                .contains("18 characters")
        );
        assert!(
            CreditCode::parse("91350100MO00100Y43")
                .unwrap_err()
                .contains("not allowed")
        );
    }

    #[test]
    fn generated_codes_verify() {
        let code = with_check_character("91650100MA7712345").unwrap();
        assert!(CreditCode::parse(&code).is_ok());
    }
}
