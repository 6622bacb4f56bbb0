//! Progress of long commands (roster import and export, log verification, reports): drawn on
//! stderr when it is a terminal, nothing when it is piped or redirected, so scripts and logs
//! see only the command's own output.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar towards `total` units of `what` (bytes are shown as sizes).
pub fn bar(total: u64, what: &str, bytes: bool) -> ProgressBar {
    let template = if bytes {
        "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})"
    } else {
        "{msg} [{bar:40}] {pos}/{len} ({eta})"
    };
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// A count of `what` with no known end.
pub fn counter(what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_owned());
    bar
}

#[cfg(test)]
mod tests {
    use std::io::IsTerminal;

    #[test]
    fn bars_are_drawn_only_on_a_terminal() {
        let piped = !std::io::stderr().is_terminal();
        assert_eq!(super::bar(10, "rows", false).is_hidden(), piped);
        assert_eq!(super::counter("projects").is_hidden(), piped);
    }
}
