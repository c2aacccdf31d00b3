//! Progress bars on stderr while `xlreg up` works (only on a terminal).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use xlreg::testing::{Observer, Progress};

/// Progress bars on stderr (keys, then joins), or nothing.
#[derive(Clone)]
pub(super) struct Ui {
    mp: Option<MultiProgress>,
    keys: ProgressBar,
    joins: ProgressBar,
}

impl Ui {
    pub(super) fn new(enabled: bool) -> Self {
        if !enabled {
            return Ui {
                mp: None,
                keys: ProgressBar::hidden(),
                joins: ProgressBar::hidden(),
            };
        }
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{prefix:>5} [{bar:32}] {pos:>3}/{len:3} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let keys = mp.add(
            ProgressBar::new(0)
                .with_style(style.clone())
                .with_prefix("keys"),
        );
        let joins = mp.add(ProgressBar::new(0).with_style(style).with_prefix("joins"));
        Ui {
            mp: Some(mp),
            keys,
            joins,
        }
    }

    pub(super) fn observer(&self) -> Option<Observer> {
        self.mp.as_ref()?;
        let (keys, joins) = (self.keys.clone(), self.joins.clone());
        Some(Observer::new(move |p| match p {
            Progress::KeysNeeded(n) => keys.set_length(n as u64),
            Progress::Key => keys.inc(1),
            Progress::KeysReady { reused, generated } => keys.finish_with_message(match reused {
                0 => format!("({generated} new)"),
                r => format!("({r} from the pool, {generated} new)"),
            }),
            Progress::Created { size, .. } => joins.set_length(size as u64),
            Progress::Joined { name, .. } => {
                joins.inc(1);
                joins.set_message(name);
            }
            Progress::Booted { .. } => {}
        }))
    }

    /// A line on stderr that does not tear the bars.
    pub(super) fn line(&self, s: &str) {
        match &self.mp {
            Some(mp) => mp.suspend(|| eprintln!("{s}")),
            None => eprintln!("{s}"),
        }
    }

    pub(super) fn clear(&self) {
        if let Some(mp) = &self.mp {
            self.keys.finish_and_clear();
            self.joins.finish_and_clear();
            let _ = mp.clear();
        }
    }
}
