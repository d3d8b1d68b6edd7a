//! The `siam-hub` command line.

use crate::config::Settings;
use crate::sim::harness::{self, Estate, SimOptions};
use crate::sim::ChanceSpec;
use crate::sla::clock::Contracts;
use crate::sla::report::{self, Period, ReportQuery};
use crate::startup::Application;
use crate::store::{self, Store};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Writes one piece of the command's output to standard output. A reader that went away (the
/// output piped into `head`, a closed descriptor) ends the output quietly: the command's work
/// is done either way, and a failed write is never a panic. Any other write failure is said
/// once on standard error.
pub(crate) fn emit(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let _ = writeln!(std::io::stderr(), "error: cannot write to standard output: {e}");
        }
    }
}

/// `println!` through [`emit`].
macro_rules! say {
    ($($arg:tt)*) => { $crate::cli::emit(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use say;

/// `print!` through [`emit`].
macro_rules! say_raw {
    ($($arg:tt)*) => { $crate::cli::emit(format_args!($($arg)*)) };
}

#[derive(Debug, Parser)]
#[command(name = "siam-hub", version, about = "Multi-supplier IT service-management integration hub")]
pub struct Cli {
    /// Configuration file (TOML); SIAM_* environment variables override it.
    #[arg(long, global = true, env = "SIAM_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: API, broker relay and dispatch, reconciliation sweeps.
    Serve,
    /// Run the hub with bundled ServiceNow and Jira simulators and a sample configuration.
    Demo {
        /// Port of the ServiceNow simulator.
        #[arg(long, default_value_t = 8091)]
        sim_port: u16,
        /// Port of the Jira Service Management simulator.
        #[arg(long, default_value_t = 8092)]
        jira_sim_port: u16,
        /// Port of the BMC Helix / Remedy simulator.
        #[arg(long, default_value_t = 8093)]
        remedy_sim_port: u16,
        /// Port of the TMF621 simulator.
        #[arg(long, default_value_t = 8094)]
        tmf_sim_port: u16,
    },
    /// Run a simulator of each supplier system in a process of its own (no hub), playing the
    /// first supplier of each system in the configuration (the demo estate without one), with
    /// chance faults on a share of the calls. Stops on SIGTERM or Ctrl-C.
    Sim {
        /// JSON file kept current with the simulators' addresses, credentials and tickets.
        #[arg(long)]
        state: PathBuf,
        /// The hub the simulators send their webhooks to, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        hub_url: Option<String>,
        /// The secret the webhooks are signed with (generated when not given).
        #[arg(long, env = "SIAM_SIM_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        /// Ports of the ServiceNow, Jira, Remedy and TMF621 simulators (0: any free port).
        #[arg(long, value_delimiter = ',', default_values_t = [0, 0, 0, 0])]
        ports: Vec<u16>,
        /// Seed of the chance faults (the same seed draws the same faults).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Share (0..1) of API calls answered with a fault, in equal parts 429 with Retry-After,
        /// 5xx, a slow answer and an answer after --timeout-ms.
        #[arg(long, default_value_t = 0.0)]
        fault_share: f64,
        #[arg(long, default_value_t = 1)]
        retry_after_secs: u64,
        #[arg(long, default_value_t = 800)]
        slow_ms: u64,
        /// Longer than the hub's `timeout_secs` for the supplier, so the hub gives up first.
        #[arg(long, default_value_t = 2500)]
        timeout_ms: u64,
        /// Seconds between two writes of the state file.
        #[arg(long, default_value_t = 2)]
        snapshot_secs: u64,
    },
    /// Create the database if needed and run pending migrations.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// SLA reports.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// First contact with a configured supplier instance: check what the hub can do with it,
    /// or discover its own vocabulary and the mapping the hub proposes.
    Supplier {
        #[command(subcommand)]
        command: SupplierCommand,
    },
    /// Print the canonical JSON the hub makes of a native supplier payload (or, with --reverse,
    /// the native payload it makes of a canonical incident or change).
    Map {
        /// Supplier system of the payload (tmf655 maps changes only).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(map_systems()))]
        system: String,
        /// What the payload is.
        #[arg(long, value_enum, default_value_t = Kind::Incident)]
        kind: Kind,
        /// Map as this configured supplier instance does (its overrides, and for TMF621 its
        /// version, flavour and vocabularies); needs the configuration file. Incidents only.
        #[arg(long)]
        supplier: Option<String>,
        /// Canonical -> native instead of native -> canonical.
        #[arg(long)]
        reverse: bool,
        /// JSON file to read (`-` for standard input).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// Print the SLA report of a supplier (or, without --supplier, the end-to-end report) for a
    /// month or a custom period: tickets opened in it, per priority.
    Report {
        /// A supplier id; without it, the end-to-end (customer) contracts.
        #[arg(long)]
        supplier: Option<String>,
        /// The month, e.g. 2026-11 (the current month when no period is given).
        #[arg(long, conflicts_with_all = ["from", "to"])]
        month: Option<String>,
        /// Start of a custom period: a date (2026-11-03) or an RFC 3339 time.
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// End of a custom period: a date (inclusive) or an RFC 3339 time (exclusive).
        #[arg(long, requires = "from")]
        to: Option<String>,
        /// Only this priority (1..5).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=5))]
        priority: Option<u8>,
        #[arg(long, default_value = "json", value_parser = ["json", "csv"])]
        format: String,
        /// With --format csv: the summary table or the list of breaches.
        #[arg(long, default_value = "summary", value_parser = ["summary", "breaches"])]
        table: String,
        /// Most breaches listed.
        #[arg(long, default_value_t = 100)]
        breaches: i64,
        /// Recompute every figure from the event log instead of the stored clocks (an audit).
        #[arg(long)]
        recompute: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SupplierCommand {
    /// Check a configured supplier: reachable (DNS, connection, TLS), clock skew, credentials
    /// and what the integration user may do, each step ok or failed with what to change. Exit
    /// status 0 when every step is ok, 1 when one failed.
    Check {
        /// The supplier's id in the configuration.
        id: String,
        /// Print the report as JSON (`{"ok", "steps"}`).
        #[arg(long)]
        json: bool,
    },
    /// Read a configured supplier's statuses, priorities and fields, with the canonical value
    /// proposed for each, and the `[suppliers.*]` settings to paste.
    Discover {
        /// The supplier's id in the configuration.
        id: String,
        /// Print the discovery as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key and print it (it is stored hashed and cannot be shown again).
    Create {
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::api::auth::Role::NAMES))]
        role: String,
        /// The supplier a `supplier` key speaks for.
        #[arg(long)]
        supplier: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Revoke a key by its prefix (the part after `siam_`): it stops working at once, and every
    /// browser session opened with it ends.
    Revoke { prefix: String },
}

/// What `siam-hub map` translates: the canonical incident of `schemas/incident.v1.json` or the
/// canonical change of `schemas/change.v1.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Incident,
    Change,
}

/// Every system `map` knows, for incidents or for changes.
fn map_systems() -> Vec<&'static str> {
    let mut all = crate::adapters::SYSTEMS.to_vec();
    for s in crate::adapters::change::SYSTEMS {
        if !all.contains(s) {
            all.push(s);
        }
    }
    all
}

/// Checks that `system` has a mapping for `kind`, before any file is read.
pub fn check_map_target(kind: Kind, system: &str) -> Result<(), String> {
    use crate::adapters::{change, mapping_for, SYSTEMS};
    match kind {
        Kind::Incident if mapping_for(system).is_none() => {
            if change::mapping_for(system).is_some() {
                Err(format!("system `{system}` maps changes only: add --kind change (incident systems: {})", SYSTEMS.join(", ")))
            } else {
                Err(format!("unsupported system `{system}`; supported: {}", SYSTEMS.join(", ")))
            }
        }
        Kind::Change if change::mapping_for(system).is_none() => Err(format!("system `{system}` has no change mapping: --kind change takes {}", change::SYSTEMS.join(", "))),
        _ => Ok(()),
    }
}

/// `siam-hub map` for either kind: the canonical document of a native payload, or with
/// `reverse` the native body of a canonical document.
pub fn map_document(kind: Kind, system: &str, reverse: bool, text: &str) -> Result<serde_json::Value, String> {
    check_map_target(kind, system)?;
    match kind {
        Kind::Incident => map_payload(system, reverse, text),
        Kind::Change => {
            let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("the file is not valid JSON: {e}"))?;
            let mapped = if reverse { crate::adapters::change::native_document(system, &doc) } else { crate::adapters::change::canonical_document(system, &doc) };
            mapped.map_err(|e| e.to_string())
        }
    }
}

pub fn map_payload(system: &str, reverse: bool, text: &str) -> Result<serde_json::Value, String> {
    let mapping = crate::adapters::mapping_for(system).ok_or_else(|| format!("unsupported system `{system}`; supported: {}", crate::adapters::SYSTEMS.join(", ")))?;
    map_payload_with(mapping.as_ref(), reverse, text)
}

/// [`map_payload`] with a given mapping (a configured instance's).
pub fn map_payload_with(mapping: &dyn crate::adapters::Mapping, reverse: bool, text: &str) -> Result<serde_json::Value, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("the file is not valid JSON: {e}"))?;
    if reverse {
        mapping.native_document(&doc).map_err(|e| e.to_string())
    } else {
        mapping.canonical_document(&doc).map_err(|e| e.to_string())
    }
}

/// The sample estate of the demo: a ServiceNow and a Jira supplier (the simulators) and the
/// integrator queue.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Why a command did not succeed; the exit status says which.
#[derive(Debug)]
pub enum Failure {
    /// The command ran and reported what it found wrong (a failed check): status 1.
    Found,
    /// The command could not run as asked (its configuration, an unknown supplier): status 2.
    Usage(String),
    /// Anything else: status 1.
    Error(String),
}

/// Runs a command and says how it ended as an exit status: 0 done, 1 failed (or found a
/// problem), 2 a usage or configuration error. An error is one line on standard error.
pub async fn execute(cli: Cli) -> u8 {
    let outcome = match cli.command {
        Command::Supplier { command } => supplier(cli.config, command).await,
        command => run(Cli { config: cli.config, command }).await.map_err(Failure::Error),
    };
    let (status, message) = match outcome {
        Ok(()) => (0, None),
        Err(Failure::Found) => (1, None),
        Err(Failure::Error(e)) => (1, Some(e)),
        Err(Failure::Usage(e)) => (2, Some(e)),
    };
    if let Some(e) = message {
        let _ = std::io::Write::write_fmt(&mut std::io::stderr(), format_args!("error: {e}\n"));
    }
    status
}

pub async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Supplier { command } => supplier(cli.config, command).await.map_err(|f| match f {
            Failure::Found => "the check found a problem".to_string(),
            Failure::Usage(e) | Failure::Error(e) => e,
        }),
        Command::Serve => {
            let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            let app = Application::build(settings.clone()).await?;
            tracing::info!(listen = %settings.listen, "SIAM Hub serving");
            app.run_until_stopped().await
        }
        Command::Demo { sim_port, jira_sim_port, remedy_sim_port, tmf_sim_port } => demo(cli.config, [sim_port, jira_sim_port, remedy_sim_port, tmf_sim_port]).await,
        Command::Sim { state, hub_url, webhook_secret, ports, seed, fault_share, retry_after_secs, slow_ms, timeout_ms, snapshot_secs } => {
            let settings = match cli.config {
                Some(path) => Settings::load(Some(&path)).map_err(|e| e.to_string())?,
                None => Settings::from_toml(DEMO_CONFIG).map_err(|e| e.to_string())?,
            };
            if !(0.0..=1.0).contains(&fault_share) {
                return Err("--fault-share must be between 0 and 1".into());
            }
            let part = fault_share / 4.0;
            let chance = ChanceSpec { seed, rate_limited: part, server_error: part, slow: part, timeout: part, retry_after_secs, slow_ms, timeout_ms };
            let ports: [u16; 4] = ports.try_into().map_err(|_| "--ports takes four ports: ServiceNow,Jira,Remedy,TMF621".to_string())?;
            let webhook_secret = webhook_secret.unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            let options = SimOptions { ports, hub_url, webhook_secret, chance, snapshot_every: std::time::Duration::from_secs(snapshot_secs) };
            harness::run(&settings, &state, options).await
        }
        Command::Migrate => {
            let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            let url = settings.database_url.clone();
            tokio::task::spawn_blocking(move || store::prepare_database(&url)).await.map_err(|e| e.to_string())??;
            say!("database {} is up to date", store::redact(&settings.database_url));
            Ok(())
        }
        Command::Keys { command: KeysCommand::Create { role, supplier, label } } => {
            let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            if role == "supplier" && supplier.is_none() {
                return Err("a supplier key needs --supplier <id>".into());
            }
            let url = settings.database_url.clone();
            tokio::task::spawn_blocking(move || store::prepare_database(&url)).await.map_err(|e| e.to_string())??;
            let db = Store::connect(&settings.database_url, 1)?;
            // The hub records every supplier it was started with, so a key can be made for any
            // of them without the configuration file it runs with.
            if let Some(s) = supplier.clone() {
                let configured = settings.supplier(&s).is_some();
                let id = s.clone();
                let known = db.run(move |c| store::suppliers::find(c, &id)).await.map_err(|e| e.to_string())?.is_some();
                if !configured && !known {
                    return Err(format!("supplier `{s}` is unknown: the hub's database has no such supplier (start the hub once with it in its configuration)"));
                }
            }
            let key = db.run(move |c| store::auth::create(c, &role, supplier.as_deref(), label.as_deref())).await.map_err(|e| e.to_string())?;
            say!("{key}");
            Ok(())
        }
        Command::Keys { command: KeysCommand::Revoke { prefix } } => {
            let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
            let db = Store::connect(&settings.database_url, 1)?;
            let p = prefix.clone();
            if db.run(move |c| store::auth::revoke(c, &p)).await.map_err(|e| e.to_string())? {
                say!("key siam_{prefix}_... revoked");
                Ok(())
            } else {
                Err(format!("no live key has the prefix `{prefix}`"))
            }
        }
        Command::Sla { command } => sla(cli.config, command).await,
        Command::Map { system, kind, supplier, reverse, file } => {
            check_map_target(kind, &system)?;
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).map_err(|e| format!("cannot read standard input: {e}"))?
            } else {
                std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
            };
            let out = match supplier {
                None => map_document(kind, &system, reverse, &text)?,
                Some(_) if kind == Kind::Change => return Err("--supplier applies to incidents only".into()),
                Some(id) => {
                    let settings = Settings::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
                    let instance = settings.supplier(&id).ok_or_else(|| format!("supplier `{id}` is not in the configuration"))?;
                    if instance.system != system {
                        return Err(format!("supplier `{id}` is a {} instance, not {system}", instance.system));
                    }
                    let mapping = crate::adapters::mapping_for_supplier(instance).ok_or_else(|| format!("unsupported system `{system}`"))?;
                    map_payload_with(mapping.as_ref(), reverse, &text)?
                }
            };
            if kind == Kind::Incident && !reverse && out.pointer("/legs/0").is_some() && out.pointer("/legs/0/native_id").is_none_or(serde_json::Value::is_null) {
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("warning: the record carries no identity field (for ServiceNow, sys_id: read it with sys_id among the sysparm_fields), so native_id is null; the hub's sync refuses such a record\n"),
                );
            }
            say!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            Ok(())
        }
    }
}

/// `siam-hub supplier check|discover ID`, with the configuration and secrets `serve` reads.
async fn supplier(config: Option<PathBuf>, command: SupplierCommand) -> Result<(), Failure> {
    let settings = Settings::load(config.as_deref()).map_err(|e| Failure::Usage(e.to_string()))?;
    let id = match &command {
        SupplierCommand::Check { id, .. } | SupplierCommand::Discover { id, .. } => id.clone(),
    };
    if settings.supplier(&id).is_none() && id == settings.routing.default_queue {
        return Err(Failure::Usage(format!("supplier `{id}` is the hub's own queue: there is no supplier system to check")));
    }
    let instance = settings.supplier(&id).ok_or_else(|| {
        let known: Vec<&str> = settings.suppliers.iter().filter(|s| s.is_external()).map(|s| s.id.as_str()).collect();
        let hint = if known.is_empty() { "it configures none (give the file with --config or SIAM_CONFIG)".to_string() } else { format!("it configures {}", known.join(", ")) };
        Failure::Usage(format!("supplier `{id}` is not in the configuration; {hint}"))
    })?;
    let (system, http) = crate::adapters::setup::for_configured(instance, &settings.egress).map_err(Failure::Usage)?;
    match command {
        SupplierCommand::Check { json, .. } => {
            let report = crate::adapters::setup::check(&http, &instance.base_url, system.as_ref()).await;
            if json {
                say!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                say_raw!("{}", check_table(instance, &report));
            }
            if report.ok {
                Ok(())
            } else {
                Err(Failure::Found)
            }
        }
        SupplierCommand::Discover { json, .. } => {
            let found = match system.discover().await {
                Ok(found) => found,
                Err(e) => return Err(Failure::Error(crate::api::admin::discovery_failed(instance, &http, &e).await)),
            };
            if json {
                say!("{}", serde_json::to_string_pretty(&found).unwrap_or_default());
            } else {
                say_raw!("{}", discovery_table(instance, &found));
            }
            Ok(())
        }
    }
}

/// A check report as a person reads it: one line per step, the fix under a failed one.
pub fn check_table(instance: &crate::config::SupplierSettings, report: &crate::adapters::setup::CheckReport) -> String {
    use std::fmt::Write;
    let mut out = format!("supplier {} ({}) at {}\n", instance.id, instance.system, instance.base_url);
    let width = report.steps.iter().map(|s| s.name.chars().count()).max().unwrap_or(0);
    for step in &report.steps {
        let _ = writeln!(out, "  {:<6}  {:<width$}  {}", if step.ok { "ok" } else { "FAILED" }, step.name, step.detail);
        if let Some(fix) = &step.fix {
            let _ = writeln!(out, "  {:<6}  {:<width$}  fix: {fix}", "", "");
        }
    }
    let failed = report.steps.iter().filter(|s| !s.ok).count();
    let _ = match failed {
        0 => writeln!(out, "result: ok ({} steps)", report.steps.len()),
        n => writeln!(out, "result: FAILED ({n} of {} steps)", report.steps.len()),
    };
    out
}

/// A discovery as a person reads it: a table per kind of value, then the TOML to paste.
pub fn discovery_table(instance: &crate::config::SupplierSettings, found: &crate::adapters::setup::Discovery) -> String {
    use std::fmt::Write;
    let mut out = format!("supplier {} ({}) at {}\n", instance.id, instance.system, instance.base_url);
    for (title, rows) in [("statuses", &found.statuses), ("priorities", &found.priorities), ("fields", &found.fields)] {
        let _ = writeln!(out, "\n{title}:");
        if rows.is_empty() {
            let _ = writeln!(out, "  (none found)");
            continue;
        }
        let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let table: Vec<[String; 5]> = rows.iter().map(|p| [p.native.clone(), p.label.clone(), cell(&p.proposed), cell(&p.configured), p.why.clone()]).collect();
        let heads = ["native", "label", "proposed", "configured", "why"];
        let widths: Vec<usize> = (0..4).map(|i| table.iter().map(|r| r[i].chars().count()).chain([heads[i].len()]).max().unwrap_or(0)).collect();
        let _ = writeln!(
            out,
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            heads[0],
            heads[1],
            heads[2],
            heads[3],
            heads[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
        for r in &table {
            let _ = writeln!(out, "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}", r[0], r[1], r[2], r[3], r[4], w0 = widths[0], w1 = widths[1], w2 = widths[2], w3 = widths[3]);
        }
    }
    if found.toml.trim().is_empty() {
        let _ = writeln!(out, "\nThe configuration maps every value found: nothing to add.");
    } else {
        let _ = writeln!(out, "\nPaste into the [[suppliers]] entry of `{}`:\n\n{}", instance.id, found.toml.trim_end());
    }
    out
}

async fn sla(config: Option<PathBuf>, command: SlaCommand) -> Result<(), String> {
    let SlaCommand::Report { supplier, month, from, to, priority, format, table, breaches, recompute } = command;
    let settings = Settings::load(config.as_deref()).map_err(|e| e.to_string())?;
    let contracts = Contracts::from_settings(&settings.sla).map_err(|e| format!("configuration: SLA: {e}"))?;
    if let Some(s) = &supplier {
        if settings.supplier(s).is_none() && *s != settings.routing.default_queue {
            return Err(format!("supplier `{s}` is not in the configuration"));
        }
    }
    if !(0..=100_000).contains(&breaches) {
        return Err("--breaches must be 0..100000".into());
    }
    let now = chrono::Utc::now();
    let period = Period::parse(month.as_deref(), from.as_deref(), to.as_deref(), &settings.reporting.time_zone, now)?;
    let url = settings.database_url.clone();
    tokio::task::spawn_blocking(move || store::prepare_database(&url)).await.map_err(|e| e.to_string())??;
    let db = Store::connect(&settings.database_url, 1)?;
    let query = ReportQuery { supplier, period, priority, breach_limit: breaches };
    let reporting = settings.reporting.clone();
    let r = db
        .run(move |c| if recompute { report::recompute(c, &contracts, &reporting, &query, now) } else { report::build(c, &contracts, &reporting, &query, now) })
        .await
        .map_err(|e| e.to_string())?;
    if r.pending_tickets > 0 {
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!("note: {} tickets changed since their clocks were stored (no hub running?); --recompute gives figures straight from the event log\n", r.pending_tickets),
        );
    }
    match (format.as_str(), table.as_str()) {
        ("csv", "breaches") => say_raw!("{}", report::breaches_csv(&r)),
        ("csv", _) => say_raw!("{}", report::to_csv(&r)),
        _ => say!("{}", serde_json::to_string_pretty(&r).unwrap_or_default()),
    }
    Ok(())
}

/// The hub with a simulator of every supported supplier system, side by side.
async fn demo(config: Option<PathBuf>, ports: [u16; 4]) -> Result<(), String> {
    let mut settings = match config {
        Some(path) => Settings::load(Some(&path)).map_err(|e| e.to_string())?,
        None => {
            let mut s = Settings::from_toml(DEMO_CONFIG).map_err(|e| e.to_string())?;
            // Environment overrides apply to the demo too.
            let env = Settings::load(None).map_err(|e| e.to_string())?;
            s.database_url = env.database_url;
            s.amqp_url = env.amqp_url;
            s.listen = env.listen;
            s
        }
    };
    let webhook_secret: String = uuid::Uuid::new_v4().simple().to_string();
    let estate =
        Estate::start(&settings, ports, &webhook_secret).map_err(|e| format!("{e} (choose other ports with --sim-port, --jira-sim-port, --remedy-sim-port, --tmf-sim-port)"))?;
    estate.configure(&mut settings);
    let [sim_url, jira_url, remedy_url, tmf_url] =
        [estate.servicenow.base_url(), estate.jira.base_url(), estate.remedy.base_url(), estate.tmf621.base_url()].map(Option::unwrap_or_default);
    let app = Application::build(settings.clone()).await?;
    let hub_url = format!("http://127.0.0.1:{}", app.port());
    estate.point_webhooks(&hub_url);
    let mut keys = Vec::new();
    for (role, supplier) in [
        ("service_desk", None),
        ("change_manager", None),
        ("manager", None),
        ("admin", None),
        ("supplier", settings.suppliers.iter().find(|s| s.is_external()).map(|s| s.id.clone())),
    ] {
        let label = Some("demo".to_string());
        let key = app.store.run(move |c| store::auth::create(c, role, supplier.as_deref(), label.as_deref())).await.map_err(|e| e.to_string())?;
        keys.push((role, key));
    }
    say!("SIAM Hub demo");
    say!("  hub:                   {hub_url}   (API docs: {hub_url}/openapi.json)");
    say!("  ServiceNow simulator:  {sim_url}   (tickets: {sim_url}/sim/incidents)");
    say!("  Jira simulator:        {jira_url}   (issues: {jira_url}/sim/issues; work one with POST /sim/issues/OPS-1/transition {{\"transition\":\"Start work\"}})");
    say!("  Remedy simulator:      {remedy_url}   (incidents: {remedy_url}/sim/incidents)");
    say!("  TMF621 simulator:      {tmf_url}   (trouble tickets: {tmf_url}/sim/tickets)");
    say!("  routing: network -> ServiceNow, email -> Jira, payroll -> Remedy, hosting -> TMF621, anything else -> the integrator queue");
    if let Some((_, desk)) = keys.iter().find(|(role, _)| *role == "service_desk") {
        say!("  Service desk console:  {hub_url}/console?key={desk}");
    }
    if let Some((_, manager)) = keys.iter().find(|(role, _)| *role == "manager") {
        say!("  SLA dashboard:         {hub_url}/dashboard?key={manager}");
    }
    for (role, key) in &keys {
        say!("  {role:<14} API key:  {key}");
    }
    say!("Try:");
    say!(
        "  curl -s -X POST {hub_url}/api/v1/incidents -H 'Authorization: Bearer {}' -H 'Idempotency-Key: demo-1' -H 'Content-Type: application/json' \\\n    -d '{{\"title\":\"Core switch down in building 2\",\"description\":\"No network on floor 3\",\"service\":\"network\",\"impact\":1,\"urgency\":2,\"caller\":\"j.smith\",\"category\":\"network\"}}'",
        keys[0].1
    );
    app.run_until_stopped().await
}
