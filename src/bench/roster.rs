//! Rosters of any size for the import benchmark: every row valid (check characters computed),
//! every expert id, ID number and phone distinct.

use std::io::Write;

use anyhow::Context;
use govit_platform::{resident_id, uscc};

/// Writes a CSV roster of `rows` experts, all in `category`, in the columns
/// docs/expert-roster.md names.
pub fn write(out: &mut impl Write, rows: usize, category: &str) -> anyhow::Result<()> {
    anyhow::ensure!(rows <= 9_999_999, "at most 9,999,999 rows");
    writeln!(
        out,
        "expert_id,name,employer_credit_code,employer,source,title,categories,phone,email,id_number,appointment_start,appointment_end"
    )?;
    // A few hundred employers, as a real pool has, rather than one per expert.
    let employers: Vec<String> = (0..400)
        .map(|e| uscc::with_check_character(&format!("91650100MA7{e:06}")))
        .collect::<Option<_>>()
        .context("credit code")?;
    let born = chrono::NaiveDate::from_ymd_opt(1960, 1, 1).context("date")?;
    for i in 0..rows {
        let birth = born + chrono::Duration::days((i / 1000) as i64);
        let id_number = resident_id::with_check_character(&format!(
            "650102{}{:03}",
            birth.format("%Y%m%d"),
            i % 1000
        ))
        .context("id number")?;
        let employer = &employers[i % employers.len()];
        writeln!(
            out,
            "B{i:07},Expert {i},{employer},Employer {},CITY,Senior engineer,{category},139{i:08},e{i}@experts.example,{id_number},2026-01-01,2029-12-31",
            i % employers.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_row_carries_valid_codes() {
        let mut csv = Vec::new();
        write(&mut csv, 2_500, "bench").unwrap();
        let text = String::from_utf8(csv).unwrap();
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), 2_500);
        let mut ids = std::collections::BTreeSet::new();
        for row in rows {
            let cols: Vec<&str> = row.split(',').collect();
            uscc::CreditCode::parse(cols[2]).unwrap();
            resident_id::validate(cols[9]).unwrap();
            assert!(ids.insert(cols[9].to_owned()), "{} twice", cols[9]);
        }
    }
}
