//! `xlreg fault --cluster NAME ACTION …`: break a running
//! `xlreg up --faults -- CMD` cluster on purpose — partition it, cut, slow
//! or heal links between members, pause, kill and restart member
//! programs — and change any `xlreg up -- CMD` cluster's membership
//! (replace a member by a new node, resize, evict; issue 23).
//!
//! The control channel is a unix socket that `up -- CMD` listens on,
//! found by cluster name: `$XDG_RUNTIME_DIR/xlreg/up/NAME.sock`, or
//! `/tmp/xlreg-UID/up/NAME.sock` without `XDG_RUNTIME_DIR`. The directory
//! is created owner-only (0700) and refused if another user owns it or
//! others may write to it, so only the user who ran `up` can send faults.
//! One request per connection: the action's words on one line; the reply
//! is lines of text ending with `ok` or `error: WHY`. This file holds the
//! words' grammar (used by both ends) and the client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use xlreg::testing::{Direction, Fault};

use crate::cli::BadInput;

/// What `xlreg fault` asks `up` to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A network fault, on top of those in force.
    Net(Fault),
    /// Every network fault gone (open connections too).
    Heal,
    /// SIGSTOP to the member program's process group.
    Pause(usize),
    /// SIGCONT to it.
    Resume(usize),
    /// SIGKILL to it.
    Kill(usize),
    /// Start the member's program again (killing it first if it runs):
    /// same node directory, so the same ID and slot.
    Restart(usize),
    /// The faults in force and the members' states.
    Status,
    /// Kill the member's program, evict it, and start a new program with
    /// a new node (new ID and keys, the slot's endpoints) in its slot.
    Replace(usize),
    /// Kill the member's program and evict it: its slot is free.
    Evict(usize),
    /// Change the cluster's size: growing starts programs for the new
    /// slots; shrinking needs the slots from the new size up empty.
    Resize(u32),
}

impl Action {
    /// Needs the fault proxies of `up --faults`.
    pub fn is_network(&self) -> bool {
        matches!(self, Action::Net(_) | Action::Heal)
    }
}

/// The grammar, for `--help` and error messages.
pub const ACTIONS: &str = "\
  partition G1 G2 ...          groups of members, e.g. `partition 0,1 2`
  isolate I                    I reaches no one, no one reaches I
  cut I J [--one-way]          stop bytes I<->J (I->J only with --one-way)
  delay I J MS [--jitter MS]   bytes I->J arrive MS (+ up to jitter) ms later
  drop I J P                   each chunk I->J lost with probability P
  heal                         every network fault gone
  pause I | resume I           SIGSTOP / SIGCONT to member I's processes
  kill I                       SIGKILL to member I's processes
  restart I                    start member I's program again (same ID, slot)
  replace I                    kill member I's program, evict it, start a new
                               program with a new node (new ID) in slot I
  evict I                      kill member I's program and evict it (slot I free)
  resize N                     grow: start programs for the new slots; shrink:
                               only over empty slots (evict them first)
  status                       faults in force and member states";

fn member(w: Option<&String>, what: &str) -> Result<usize, String> {
    let w = w.ok_or_else(|| format!("{what}: a member number is missing"))?;
    w.parse()
        .map_err(|_| format!("{what}: {w:?} is not a member number"))
}

fn millis(w: &str, what: &str) -> Result<Duration, String> {
    let n = w.strip_suffix("ms").unwrap_or(w);
    n.parse::<u64>()
        .ok()
        .filter(|&ms| ms <= 3_600_000)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{what}: {w:?} is not a number of milliseconds (0..=3600000)"))
}

/// Parse an action's words (`["partition", "0,1", "2"]`).
pub fn parse(words: &[String]) -> Result<Action, String> {
    let Some((verb, rest)) = words.split_first() else {
        return Err("no action given".into());
    };
    let at = |i: usize| rest.get(i);
    let exact = |n: usize| {
        if rest.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{verb} takes {n} argument(s), got {}: {rest:?}",
                rest.len()
            ))
        }
    };
    let pair = || Ok::<_, String>((member(at(0), verb)?, member(at(1), verb)?));
    let a = match verb.as_str() {
        "partition" => {
            if rest.is_empty() {
                return Err("partition needs groups, e.g. `partition 0,1 2`".into());
            }
            let mut groups = Vec::new();
            for g in rest {
                let mut group = Vec::new();
                for m in g.split(',') {
                    group.push(member(Some(&m.to_string()), "partition")?);
                }
                groups.push(group);
            }
            Action::Net(Fault::Partition(groups))
        }
        "isolate" => {
            exact(1)?;
            Action::Net(Fault::Isolate(member(at(0), verb)?))
        }
        "cut" => {
            let one_way = match rest.get(2).map(String::as_str) {
                None => false,
                Some("--one-way") if rest.len() == 3 => true,
                _ => return Err(format!("cut I J [--one-way], got {rest:?}")),
            };
            let (from, to) = pair()?;
            Action::Net(Fault::Cut {
                from,
                to,
                direction: if one_way {
                    Direction::OneWay
                } else {
                    Direction::Both
                },
            })
        }
        "delay" => {
            let jitter = match (rest.len(), rest.get(3).map(String::as_str)) {
                (3, _) => Duration::ZERO,
                (5, Some("--jitter")) => millis(&rest[4], "delay --jitter")?,
                _ => return Err(format!("delay I J MS [--jitter MS], got {rest:?}")),
            };
            let (from, to) = pair()?;
            Action::Net(Fault::Delay {
                from,
                to,
                delay: millis(&rest[2], "delay")?,
                jitter,
            })
        }
        "drop" => {
            exact(3)?;
            let (from, to) = pair()?;
            let p: f64 = rest[2]
                .parse()
                .map_err(|_| format!("drop: {:?} is not a probability", rest[2]))?;
            Action::Net(Fault::Drop {
                from,
                to,
                probability: p,
            })
        }
        "heal" | "status" => {
            exact(0)?;
            if verb == "heal" {
                Action::Heal
            } else {
                Action::Status
            }
        }
        "pause" | "resume" | "kill" | "restart" | "replace" | "evict" => {
            exact(1)?;
            let i = member(at(0), verb)?;
            match verb.as_str() {
                "pause" => Action::Pause(i),
                "resume" => Action::Resume(i),
                "kill" => Action::Kill(i),
                "replace" => Action::Replace(i),
                "evict" => Action::Evict(i),
                _ => Action::Restart(i),
            }
        }
        "resize" => {
            exact(1)?;
            let n = rest[0]
                .parse::<u32>()
                .map_err(|_| format!("resize: {:?} is not a cluster size", rest[0]))?;
            Action::Resize(n)
        }
        other => return Err(format!("unknown action {other:?}; actions:\n{ACTIONS}")),
    };
    Ok(a)
}

/// The directory of the control sockets, created owner-only if missing;
/// refused if another user owns it or others may write to it.
pub fn socket_dir() -> anyhow::Result<PathBuf> {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    let base = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("xlreg"),
        None => PathBuf::from(format!("/tmp/xlreg-{uid}")),
    };
    let dir = base.join("up");
    for d in [&base, &dir] {
        match std::fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .map_err(|e| (e.kind(), e))
        {
            Ok(()) => {}
            Err((std::io::ErrorKind::AlreadyExists, _)) => {}
            Err((_, e)) => return Err(e).with_context(|| format!("creating {}", d.display())),
        }
        let md = std::fs::symlink_metadata(d).with_context(|| format!("{}", d.display()))?;
        if !md.is_dir() || md.uid() != uid || md.permissions().mode() & 0o022 != 0 {
            bail!(
                "{} must be a directory owned by you (uid {uid}) that others cannot write to",
                d.display()
            );
        }
    }
    Ok(dir)
}

/// The control socket of cluster `name`.
pub fn socket_path(name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        || name.starts_with('.')
    {
        bail!(BadInput(format!(
            "cluster name {name:?}: faults need 1 to 64 letters, digits, '.', '_' or '-' \
             (not starting with '.')"
        )));
    }
    Ok(socket_dir()?.join(format!("{name}.sock")))
}

/// Arguments of `xlreg fault`.
#[derive(Args, Debug)]
#[command(after_help = format!("Actions (members are slot numbers, 0..N):\n{ACTIONS}\n\n\
The cluster must run under `xlreg up -- CMD` (network faults: `xlreg up
--faults -- CMD`); up prints each fault and change with a timestamp.
Inside a member program XLREG_CLUSTER_NAME is set, so --cluster can be
left out there."))]
pub struct FaultArgs {
    /// Name of the `xlreg up -- CMD` cluster.
    #[arg(long, env = "XLREG_CLUSTER_NAME", value_name = "NAME")]
    pub cluster: String,
    /// The action and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ACTION"
    )]
    pub words: Vec<String>,
}

/// Run `xlreg fault`.
pub fn run(a: FaultArgs) -> anyhow::Result<()> {
    let action = parse(&a.words).map_err(BadInput)?;
    let path = socket_path(&a.cluster)?;
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        anyhow::anyhow!(
            "cannot reach cluster {:?} at {}: {e} (is `xlreg up -- CMD` running for it?)",
            a.cluster,
            path.display()
        )
    })?;
    // A membership change answers once the new programs joined, which up
    // bounds by its --wait; the others answer at once.
    let membership = matches!(
        action,
        Action::Replace(_) | Action::Evict(_) | Action::Resize(_)
    );
    s.set_read_timeout((!membership).then(|| Duration::from_secs(30)))?;
    writeln!(s, "{}", a.words.join(" "))?;
    for line in BufReader::new(&s).lines() {
        let line = line.context("reading up's reply")?;
        if line == "ok" {
            return Ok(());
        }
        if let Some(why) = line.strip_prefix("error: ") {
            bail!(BadInput(why.to_string()));
        }
        println!("{line}");
    }
    bail!("up closed the control connection without an answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Action, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn every_action_parses_and_prints_back_as_its_words() {
        for s in [
            "partition 0,1 2",
            "isolate 2",
            "cut 0 1",
            "cut 0 1 --one-way",
            "delay 0 1 200ms",
            "delay 0 1 200ms --jitter 20ms",
            "drop 0 1 0.5",
        ] {
            let Action::Net(f) = p(s).unwrap() else {
                panic!("{s}")
            };
            assert_eq!(f.to_string(), s);
        }
        assert_eq!(p("heal").unwrap(), Action::Heal);
        assert_eq!(p("pause 1").unwrap(), Action::Pause(1));
        assert_eq!(p("restart 2").unwrap(), Action::Restart(2));
        assert_eq!(p("status").unwrap(), Action::Status);
        assert_eq!(p("replace 1").unwrap(), Action::Replace(1));
        assert_eq!(p("evict 2").unwrap(), Action::Evict(2));
        assert_eq!(p("resize 4").unwrap(), Action::Resize(4));
    }

    #[test]
    fn bad_words_are_refused_with_what_is_wrong() {
        for (s, want) in [
            ("", "no action"),
            ("partition", "needs groups"),
            ("partition 0,x", "\"x\""),
            ("cut 0", "member number is missing"),
            ("cut 0 1 --both", "--one-way"),
            ("delay 0 1 soon", "milliseconds"),
            ("drop 0 1 often", "probability"),
            ("heal now", "takes 0"),
            ("resize", "takes 1"),
            ("resize four", "not a cluster size"),
            ("replace", "takes 1"),
            ("explode 1", "unknown action"),
        ] {
            let e = p(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn cluster_names_that_cannot_be_file_names_are_refused() {
        for n in ["", "../x", "a/b", ".hidden", &"x".repeat(65)] {
            assert!(socket_path(n).is_err(), "{n:?}");
        }
    }
}
