//! Progress while `invalidate` works: one line per state change and a periodic line with the
//! elapsed time in CI logs; a spinner with the elapsed time on a terminal. Always on stderr, so
//! stdout carries only the result.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`--quiet`).
    Quiet,
    /// Plain lines: one per state change, and one every interval while waiting (CI logs).
    Lines,
    /// Lines for state changes, and a spinner line redrawn in place (stderr is a terminal).
    Terminal,
}

impl Mode {
    /// `Terminal` when stderr is a terminal that can redraw a line, else `Lines`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal()
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        {
            Mode::Terminal
        } else {
            Mode::Lines
        }
    }
}

#[derive(Debug)]
struct State {
    /// What is being waited for, e.g. "invalidation I2… InProgress".
    waiting: Option<String>,
    /// When the last line was printed (a periodic line is due `interval` after it).
    last_line: Instant,
}

/// The progress reporter of one command.
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    started: Instant,
    interval: Duration,
    state: Arc<Mutex<State>>,
    spinner: Option<JoinHandle<()>>,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR_LINE: &str = "\r\x1b[2K";

impl Progress {
    /// `interval`: how often a periodic line is printed in `Lines` mode. Must be called inside
    /// a Tokio runtime (the spinner is a task).
    pub fn new(mode: Mode, interval: Duration) -> Self {
        let started = Instant::now();
        let state = Arc::new(Mutex::new(State {
            waiting: None,
            last_line: started,
        }));
        let spinner = (mode == Mode::Terminal).then(|| {
            let state = state.clone();
            tokio::spawn(async move {
                let mut frame = 0usize;
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let state = state.lock().expect("progress lock");
                    if let Some(waiting) = &state.waiting {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(
                            err,
                            "{CLEAR_LINE}{} {waiting} ({} elapsed)",
                            SPINNER[frame % SPINNER.len()],
                            format_duration(started.elapsed())
                        );
                        let _ = err.flush();
                        frame += 1;
                    }
                }
            })
        });
        Self {
            mode,
            started,
            interval: interval.max(Duration::from_millis(100)),
            state,
            spinner,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A line that stays: a state change, a retry, a note.
    pub fn line(&self, message: impl AsRef<str>) {
        if self.mode == Mode::Quiet {
            return;
        }
        let mut state = self.state.lock().expect("progress lock");
        state.last_line = Instant::now();
        let clear = if self.mode == Mode::Terminal {
            CLEAR_LINE
        } else {
            ""
        };
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{clear}[{}] {}",
            format_clock(self.started.elapsed()),
            message.as_ref()
        );
        let _ = err.flush();
    }

    /// What periodic lines and the spinner say is being waited for.
    pub fn waiting(&self, what: impl Into<String>) {
        self.state.lock().expect("progress lock").waiting = Some(what.into());
    }

    /// Prints the periodic line if one is due (`Lines` mode).
    pub fn tick(&self) {
        if self.mode != Mode::Lines {
            return;
        }
        let line = {
            let state = self.state.lock().expect("progress lock");
            match &state.waiting {
                Some(waiting) if state.last_line.elapsed() >= self.interval => {
                    Some(format!("still {waiting}"))
                }
                _ => None,
            }
        };
        if let Some(line) = line {
            let elapsed = format_duration(self.started.elapsed());
            self.line(format!("{line} ({elapsed} elapsed)"));
        }
    }

    /// Sleeps, printing periodic lines as they fall due.
    pub async fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        loop {
            self.tick();
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(Duration::from_millis(500))).await;
        }
    }

    /// Stops the spinner and clears its line.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(spinner) = self.spinner.take() {
            spinner.abort();
            let _state = self.state.lock().expect("progress lock");
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{CLEAR_LINE}");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `05:07` or `1:02:03`: the prefix of progress lines.
pub fn format_clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// `250ms`, `4s`, `1m05s`, `1h02m03s`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock() {
        assert_eq!(format_clock(Duration::ZERO), "00:00");
        assert_eq!(format_clock(Duration::from_millis(59_999)), "00:59");
        assert_eq!(format_clock(Duration::from_secs(307)), "05:07");
        assert_eq!(format_clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(4_400)), "4s");
        assert_eq!(format_duration(Duration::from_secs(59)), "59s");
        assert_eq!(format_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(format_duration(Duration::from_secs(900)), "15m00s");
        assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
    }

    #[test]
    fn quiet_mode_is_quiet_and_detect_honours_quiet() {
        assert_eq!(Mode::detect(true), Mode::Quiet);
        // Under the test harness stderr is captured (not a terminal).
        let p = Progress {
            mode: Mode::Quiet,
            started: Instant::now(),
            interval: Duration::from_secs(1),
            state: Arc::new(Mutex::new(State {
                waiting: Some("x".into()),
                last_line: Instant::now() - Duration::from_secs(10),
            })),
            spinner: None,
        };
        p.tick();
        p.line("nothing");
        assert!(p.state.lock().unwrap().last_line.elapsed() >= Duration::from_secs(10));
    }
}
