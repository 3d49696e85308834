//! Executes a plan. Steps of one namespace run in order on one dedicated thread inside that
//! namespace; different namespaces run in parallel. A failure in one namespace does not stop the
//! others: every failure is collected and reported together.

pub mod links;

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use crate::desired::{Desired, NamespaceSpec};
use crate::kernel::netlink::{LinkId, Netlink};
use crate::kernel::{files, netns, nft, sysctl};
use crate::observe::parallel_map;
use crate::plan::{Plan, Step};
use crate::state::{self, Record, RECORD_VERSION};

/// What a run changed, skipped and failed at.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps carried out, in order per namespace.
    pub applied: Vec<Step>,
    /// Tolerated problems, e.g. a sysctl that does not exist in a child namespace.
    pub warnings: Vec<String>,
    /// Steps that failed, with the reason.
    pub failures: Vec<String>,
    /// Facts worth telling the user, such as which WireGuard backend runs a link.
    pub notes: Vec<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.applied.extend(other.applied);
        self.warnings.extend(other.warnings);
        self.failures.extend(other.failures);
        self.notes.extend(other.notes);
    }
}

/// Hidden test hook: `NETNSCTL_KILL_AFTER_STEPS=K` makes the process SIGKILL itself right after
/// the K-th step of the run, to test recovery from crashes at every step boundary.
pub const KILL_AFTER_STEPS_ENV: &str = "NETNSCTL_KILL_AFTER_STEPS";

static STEPS_DONE: AtomicUsize = AtomicUsize::new(0);

/// Counts a finished step and kills the process when the crash-test hook asks for it.
pub fn step_boundary() {
    static KILL_AFTER: OnceLock<Option<usize>> = OnceLock::new();
    let kill_after = *KILL_AFTER.get_or_init(|| {
        std::env::var(KILL_AFTER_STEPS_ENV)
            .ok()
            .and_then(|value| value.parse().ok())
    });
    let done = STEPS_DONE.fetch_add(1, Ordering::SeqCst) + 1;
    if kill_after == Some(done) {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Returns the number of steps finished, failed or skipped since the process started.
pub fn steps_done() -> usize {
    STEPS_DONE.load(Ordering::SeqCst)
}

/// Carries out `plan` for the namespaces in `desired`: first each namespace's own steps, in
/// parallel, then the link steps in plan order, because links join namespaces.
pub fn apply(desired: &Desired, plan: &Plan) -> Outcome {
    let mut by_namespace: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    let mut link_steps: Vec<&Step> = Vec::new();
    for step in &plan.steps {
        if step.is_link_step() {
            link_steps.push(step);
        } else {
            by_namespace.entry(step.namespace()).or_default().push(step);
        }
    }
    let mut outcome = Outcome::default();
    if !by_namespace.is_empty() {
        apply_namespaces(desired, plan, by_namespace, &mut outcome);
    }
    if !link_steps.is_empty() {
        links::apply_links(desired, &link_steps, &mut outcome);
    }
    outcome
}

fn apply_namespaces(
    desired: &Desired,
    plan: &Plan,
    by_namespace: BTreeMap<&str, Vec<&Step>>,
    outcome: &mut Outcome,
) {
    let creates = plan.steps.iter().any(|step| {
        matches!(
            step,
            Step::CreateNamespace { .. } | Step::ReplaceStaleFile { .. }
        )
    });
    if creates {
        if let Err(err) = netns::prepare_run_dir() {
            outcome
                .failures
                .push(format!("cannot prepare {}: {err}", netns::NETNS_RUN_DIR));
            return;
        }
    }

    let work: Vec<(&NamespaceSpec, Vec<&Step>)> = by_namespace
        .into_iter()
        .filter_map(|(name, steps)| desired.namespaces.get(name).map(|spec| (spec, steps)))
        .collect();
    for result in parallel_map(&work, |(spec, steps)| apply_namespace(spec, steps)) {
        outcome.merge(result);
    }
}

fn apply_namespace(spec: &NamespaceSpec, steps: &[&Step]) -> Outcome {
    let mut outcome = Outcome::default();
    let name = spec.name.as_str();
    let path = netns::netns_path(name);
    let mut record = match state::read_record(name) {
        Ok(record) => record.unwrap_or_default(),
        Err(err) => {
            outcome.failures.push(format!("{name}: {err}"));
            return outcome;
        }
    };
    record.version = RECORD_VERSION;
    if matches!(
        steps.first(),
        Some(Step::CreateNamespace { .. } | Step::ReplaceStaleFile { .. })
    ) {
        // Values recorded for an earlier namespace under this name do not apply to a new one.
        record.sysctl_originals.clear();
    }

    let (first, rest) = match steps.split_first() {
        Some((first, rest)) => (*first, rest),
        None => return outcome,
    };
    let entered = match first {
        Step::CreateNamespace { .. } | Step::ReplaceStaleFile { .. } => {
            // The record goes first: after a crash between here and the mount, the name is
            // still known to be netnsctl's and the next apply repairs it.
            let prepared = state::write_record(name, &record).and_then(|()| {
                if matches!(first, Step::ReplaceStaleFile { .. }) {
                    netns::remove(&path)?;
                }
                Ok(())
            });
            match prepared {
                Err(err) => Err(err),
                Ok(()) => netns::in_new_netns(&path, || {
                    finish(first, &mut outcome);
                    run_inside(spec, rest, &mut record, &mut outcome);
                }),
            }
        }
        Step::AdoptNamespace { .. } => {
            record.adopted = true;
            match state::write_record(name, &record) {
                Err(err) => Err(err),
                Ok(()) => netns::in_netns(&path, || {
                    finish(first, &mut outcome);
                    run_inside(spec, rest, &mut record, &mut outcome);
                }),
            }
        }
        _ => netns::in_netns(&path, || run_inside(spec, steps, &mut record, &mut outcome)),
    };
    if let Err(err) = entered {
        outcome.failures.push(format!("{name}: {err}"));
        return outcome;
    }
    if let Err(err) = state::write_record(name, &record) {
        outcome
            .failures
            .push(format!("{name}: cannot write state record: {err}"));
    }
    outcome
}

fn finish(step: &Step, outcome: &mut Outcome) {
    tracing::info!(namespace = step.namespace(), step = %step, "applied");
    outcome.applied.push(step.clone());
    step_boundary();
}

/// Runs steps in the calling thread's namespace.
fn run_inside(spec: &NamespaceSpec, steps: &[&Step], record: &mut Record, outcome: &mut Outcome) {
    let name = spec.name.as_str();
    let mut netlink: Option<Netlink> = None;
    let mut net_dir: Option<sysctl::NetDir> = None;
    match netns::current_thread_netns() {
        Ok((_, ino)) => record.netns_inode = Some(ino),
        Err(err) => tracing::warn!(namespace = name, "cannot read the namespace inode: {err}"),
    }
    for step in steps {
        let result = match step {
            Step::SetLinkUp { link, .. } => set_link_up(&mut netlink, link),
            Step::SetSysctl { key, value, .. } => {
                let net_dir = net_dir.get_or_insert_with(sysctl::NetDir::new);
                match set_sysctl(net_dir, spec, key, value, record, outcome) {
                    // Every key was skipped: nothing changed, and the warning gives the reason.
                    Ok(false) => {
                        step_boundary();
                        continue;
                    }
                    other => other.map(drop),
                }
            }
            Step::RestoreSysctl { key, value, .. } => restore_sysctl(name, key, value, record),
            Step::LoadRuleset { .. } => match &spec.ruleset {
                Some(ruleset) => match nft::load_ruleset(&ruleset.text, &ruleset.label) {
                    Ok(()) => {
                        record.ruleset_digest = Some(ruleset.digest.clone());
                        record.ruleset_generation = nft::ruleset_generation().ok();
                        Ok(())
                    }
                    Err(err) => Err(format!(
                        "nftables ruleset not loaded, the previous ruleset stays: {err}"
                    )),
                },
                None => Ok(()),
            },
            Step::FlushRuleset { .. } => match nft::flush_ruleset() {
                Ok(()) => {
                    record.ruleset_digest = None;
                    record.ruleset_generation = None;
                    Ok(())
                }
                Err(err) => Err(format!("cannot flush the nftables ruleset: {err}")),
            },
            Step::WriteResolvConf { .. } => write_resolv_conf(name, &spec.resolv_conf),
            _ => Ok(()),
        };
        match result {
            Ok(()) => finish(step, outcome),
            Err(message) => {
                outcome.failures.push(format!("{name}: {message}"));
                step_boundary();
            }
        }
    }
}

fn set_link_up(netlink: &mut Option<Netlink>, link: &str) -> Result<(), String> {
    if netlink.is_none() {
        *netlink =
            Some(Netlink::open().map_err(|err| format!("cannot open rtnetlink socket: {err}"))?);
    }
    let netlink = netlink.as_mut().expect("opened above");
    let found = netlink
        .get_link(LinkId::Name(link))
        .map_err(|err| err.to_string())?
        .ok_or_else(|| format!("link {link} not found"))?;
    netlink
        .set_link_up(found.index, true)
        .map_err(|err| err.to_string())
}

/// Writes a sysctl entry, expanding a glob without the keys it skips, and records each key's
/// value from before netnsctl first set it. A key that does not exist or is read-only in a child
/// namespace is skipped with a warning, and so is any failure of an entry with `ignore_failure`.
/// Any other error (an invalid value, say) fails the step. Returns whether any key was written.
fn set_sysctl(
    net_dir: &mut sysctl::NetDir,
    spec: &NamespaceSpec,
    key: &str,
    value: &str,
    record: &mut Record,
    outcome: &mut Outcome,
) -> Result<bool, String> {
    let namespace = spec.name.as_str();
    let setting = spec.sysctl_setting(key);
    let mut keys = sysctl::expand_glob(key);
    if sysctl::is_glob(key) {
        keys.retain(|concrete| !spec.sysctl_glob_exclusions.contains(concrete));
        if keys.is_empty() {
            tracing::debug!(namespace, key, "sysctl glob matches no key");
        }
    }
    let mut failures = Vec::new();
    let mut written = false;
    for concrete in keys {
        let original = match record.sysctl_originals.contains_key(&concrete) {
            true => None,
            false => match net_dir.read(&concrete) {
                Ok(sysctl::SysctlState::Value(original)) => Some(original),
                _ => None,
            },
        };
        let Err(err) = net_dir.write(&concrete, value) else {
            if let Some(original) = original {
                record.sysctl_originals.insert(concrete, original);
            }
            written = true;
            continue;
        };
        let reason = match err.kind() {
            io::ErrorKind::NotFound => "does not exist in this namespace".to_owned(),
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                "cannot be written in a child namespace".to_owned()
            }
            _ if setting.is_some_and(|setting| setting.ignore_failure) => {
                format!("cannot be set to {value:?} ({err}), and its '-' prefix ignores that")
            }
            _ => {
                failures.push(rejected_sysctl(setting, key, &concrete, value, &err));
                continue;
            }
        };
        tracing::warn!(namespace, key = concrete, reason, "sysctl skipped");
        outcome
            .warnings
            .push(format!("{namespace}: sysctl {concrete} {reason}; skipped"));
    }
    if failures.is_empty() {
        Ok(written)
    } else {
        Err(failures.join("; "))
    }
}

/// Describes a value the kernel rejected: where it is declared, the key, the value, the
/// kernel's reason and what to write instead.
pub fn rejected_sysctl(
    setting: Option<&crate::desired::SysctlSetting>,
    key: &str,
    concrete: &str,
    value: &str,
    err: &io::Error,
) -> String {
    let declared = match setting {
        Some(setting) => setting.source.clone(),
        None => format!("sysctl {key}"),
    };
    let target = if concrete == key {
        String::new()
    } else {
        format!(" (writing {concrete})")
    };
    let hint = if err.raw_os_error() == Some(nix::libc::EINVAL) {
        let trimmed = value.trim();
        if trimmed.starts_with('+') {
            "; the kernel reads integers as digits with an optional '-', so drop the '+'"
        } else {
            "; write a value in the range the kernel documents for this key \
             (Documentation/networking/ip-sysctl.rst)"
        }
    } else {
        ""
    };
    format!("{declared} = {value:?}: the kernel rejected the value{target}: {err}{hint}")
}

/// Writes back the value a sysctl had before netnsctl set it, and removes the key from the
/// record. A key that no longer exists (its link was deleted) is removed from the record too.
fn restore_sysctl(
    namespace: &str,
    key: &str,
    value: &str,
    record: &mut Record,
) -> Result<(), String> {
    match sysctl::write(key, value) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            tracing::info!(namespace, key, "sysctl to restore no longer exists");
        }
        Err(err) => return Err(format!("cannot restore sysctl {key} = {value:?}: {err}")),
    }
    record.sysctl_originals.remove(key);
    Ok(())
}

fn write_resolv_conf(namespace: &str, contents: &str) -> Result<(), String> {
    let dir = netns::etc_dir(namespace);
    files::create_dir_all(&dir, 0o755).map_err(|err| err.to_string())?;
    files::write_in_place(&dir.join("resolv.conf"), contents.as_bytes(), 0o644)
        .map_err(|err| err.to_string())
}

/// Added to nft's "Interface does not exist": `iif` and `oif` look a link up when the ruleset
/// loads, and a namespace's ruleset loads before its links exist, so that a killswitch filters
/// from the first packet on.
const INTERFACE_HINT: &str = "\nnote: netnsctl loads a namespace's ruleset before it creates \
the namespace's links; match links by name with iifname and oifname";

/// Checks rulesets with `nft --check` in a throwaway namespace before anything changes, so a
/// syntax error stops the run with nothing applied. Identical rulesets are checked once.
/// Returns nft's message per failing ruleset label.
pub fn check_rulesets(rulesets: &[&crate::desired::Ruleset]) -> Result<Vec<String>, String> {
    let mut unique: BTreeMap<&str, &crate::desired::Ruleset> = BTreeMap::new();
    for ruleset in rulesets {
        unique.entry(ruleset.digest.as_str()).or_insert(ruleset);
    }
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    netns::on_thread(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|err| {
            format!(
                "cannot create a namespace to check rulesets in: {}",
                err.desc()
            )
        })?;
        let mut errors = Vec::new();
        for ruleset in unique.values() {
            match nft::check_ruleset(&ruleset.text, &ruleset.label) {
                Ok(()) => {}
                Err(nft::NftError::Rejected { message }) => {
                    let mut message = message.trim_end().to_owned();
                    if message.contains("Interface does not exist") {
                        message.push_str(INTERFACE_HINT);
                    }
                    errors.push(message)
                }
                Err(err) => return Err(err.to_string()),
            }
        }
        Ok(errors)
    })
}

/// Test-writes every sysctl value of `specs` in a throwaway namespace, so a value the kernel
/// rejects stops the run before anything changes. Namespaces with the same settings share one
/// throwaway namespace; each group gets a fresh one. Keys that do not exist there (a link's
/// keys) and entries with `ignore_failure` are not checked. Returns one message per rejected
/// value and namespace.
pub fn check_sysctls(specs: &[&NamespaceSpec]) -> Result<Vec<String>, String> {
    // Groups of specs whose settings (without their declaration sites) are equal.
    let mut groups: Vec<Vec<&NamespaceSpec>> = Vec::new();
    for spec in specs.iter().filter(|spec| !spec.sysctls.is_empty()) {
        match groups
            .iter_mut()
            .find(|group| same_sysctl_settings(group[0], spec))
        {
            Some(group) => group.push(spec),
            None => groups.push(vec![spec]),
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    netns::on_thread(|| {
        let mut errors = Vec::new();
        for group in groups {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|err| {
                format!(
                    "cannot create a namespace to check sysctl values in: {}",
                    err.desc()
                )
            })?;
            let first = group[0];
            for (position, setting) in first.sysctls.iter().enumerate() {
                if setting.ignore_failure {
                    continue;
                }
                let mut keys = sysctl::expand_glob(&setting.key);
                if sysctl::is_glob(&setting.key) {
                    keys.retain(|concrete| !first.sysctl_glob_exclusions.contains(concrete));
                }
                for concrete in keys {
                    let Err(err) = sysctl::write(&concrete, &setting.value) else {
                        continue;
                    };
                    if matches!(
                        err.kind(),
                        io::ErrorKind::NotFound
                            | io::ErrorKind::PermissionDenied
                            | io::ErrorKind::ReadOnlyFilesystem
                    ) {
                        continue;
                    }
                    for spec in &group {
                        let own = &spec.sysctls[position];
                        errors.push(rejected_sysctl(
                            Some(own),
                            &own.key,
                            &concrete,
                            &own.value,
                            &err,
                        ));
                    }
                }
            }
        }
        Ok(errors)
    })
}

/// Returns true when two specs set the same sysctls to the same values in the same order.
fn same_sysctl_settings(a: &NamespaceSpec, b: &NamespaceSpec) -> bool {
    a.sysctl_glob_exclusions == b.sysctl_glob_exclusions
        && a.sysctls.len() == b.sysctls.len()
        && a.sysctls.iter().zip(&b.sysctls).all(|(x, y)| {
            x.key == y.key && x.value == y.value && x.ignore_failure == y.ignore_failure
        })
}
