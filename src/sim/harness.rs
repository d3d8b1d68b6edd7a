//! The four supplier simulators side by side, as the demo runs them beside the hub and as
//! `siam-hub sim` runs them in a process of their own: there the hub can be killed and restarted
//! while the supplier side keeps its tickets, and a state file tells a checker where the
//! simulators listen and (every few seconds and on exit) what tickets they hold.

use super::jira::{JiraSim, SimConfig as JiraConfig, WebhookTarget as JiraWebhook};
use super::remedy::{RemedySim, SimConfig as RemedyConfig, WebhookTarget as RemedyWebhook};
use super::servicenow::{DisplayMode, ServiceNowSim, SimConfig as ServiceNowConfig, WebhookTarget as ServiceNowWebhook};
use super::tmf621::{SimConfig as TmfConfig, Tmf621Sim};
use super::ChanceSpec;
use crate::config::{SecretRef, Settings, WebhookAuth};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// The password of the integration user on the ServiceNow, Remedy and TMF621 simulators.
pub const PASSWORD: &str = "demo-password";
const USER: &str = "hub.integration";

/// The supplier systems in the order of their ports.
pub const SYSTEMS: [&str; 4] = ["servicenow", "jira", "remedy", "tmf621"];

/// How a hub reaches one simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub system: String,
    /// The supplier instance of the configuration it plays.
    pub supplier: String,
    pub base_url: String,
    pub username: String,
    pub password: String,
}

/// A note on a supplier ticket, as its system stores it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NoteState {
    pub author: String,
    pub text: String,
}

/// A supplier ticket, in the terms every system shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TicketState {
    pub system: String,
    pub supplier: String,
    /// The id the hub's leg holds (`sys_id`, issue id, Incident Number, ticket id).
    pub id: String,
    /// The number an agent sees and the agent endpoints take (`INC0010001`, `OPS-1`...).
    pub number: String,
    /// The hub reference the ticket carries, empty when none.
    pub reference: String,
    /// The native status.
    pub status: String,
    pub notes: Vec<NoteState>,
}

/// What the state file holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateFile {
    pub pid: u32,
    pub webhook_secret: String,
    pub endpoints: Vec<Endpoint>,
    /// The chance faults the simulators started with (`/sim/faults` may change them since).
    pub chance: ChanceSpec,
    /// When `tickets` was taken (RFC 3339).
    pub taken_at: String,
    pub tickets: Vec<TicketState>,
}

impl StateFile {
    pub fn read(path: &Path) -> Result<StateFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{} is not a simulator state file: {e}", path.display()))
    }

    pub fn endpoint(&self, system: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.system == system)
    }

    /// Writes the file whole (a reader never sees half of it).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// The four simulators, running on the current tokio runtime.
pub struct Estate {
    pub servicenow: ServiceNowSim,
    pub jira: JiraSim,
    pub remedy: RemedySim,
    pub tmf621: Tmf621Sim,
    pub webhook_secret: String,
    /// The supplier each system plays (the first of that system in the configuration).
    suppliers: [String; 4],
}

fn bind(port: u16, system: &str) -> Result<std::net::TcpListener, String> {
    std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("cannot start the {system} simulator on port {port}: {e}"))
}

impl Estate {
    /// Starts a simulator of each system on `ports` (0: any free port), playing the first supplier
    /// of that system in `settings`.
    pub fn start(settings: &Settings, ports: [u16; 4], webhook_secret: &str) -> Result<Estate, String> {
        let supplier = |system: &str| settings.suppliers.iter().find(|s| s.system == system).map(|s| s.id.clone()).unwrap_or_default();
        let suppliers = SYSTEMS.map(supplier);
        let servicenow = ServiceNowSim::new(ServiceNowConfig { user: USER.into(), password: PASSWORD.into(), ..ServiceNowConfig::default() });
        servicenow.start(bind(ports[0], "ServiceNow")?).map_err(|e| e.to_string())?;
        let jira = JiraSim::new(JiraConfig::default());
        jira.start(bind(ports[1], "Jira")?).map_err(|e| e.to_string())?;
        let remedy = RemedySim::new(RemedyConfig { password: PASSWORD.into(), ..RemedyConfig::default() });
        remedy.start(bind(ports[2], "Remedy")?).map_err(|e| e.to_string())?;
        let tmf621 = Tmf621Sim::new(TmfConfig { password: PASSWORD.into(), listener_auth: Some((suppliers[3].clone(), webhook_secret.to_string())), ..TmfConfig::default() });
        tmf621.start(bind(ports[3], "TMF621")?).map_err(|e| e.to_string())?;
        Ok(Estate { servicenow, jira, remedy, tmf621, webhook_secret: webhook_secret.to_string(), suppliers })
    }

    /// Where each simulator listens and how the hub signs in to it.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let jira = JiraConfig::default();
        let urls = [self.servicenow.base_url(), self.jira.base_url(), self.remedy.base_url(), self.tmf621.base_url()];
        SYSTEMS
            .iter()
            .zip(urls)
            .zip(&self.suppliers)
            .map(|((system, url), supplier)| {
                let (username, password) = if *system == "jira" { (jira.email.clone(), jira.api_token.clone()) } else { (USER.to_string(), PASSWORD.to_string()) };
                Endpoint { system: system.to_string(), supplier: supplier.clone(), base_url: url.unwrap_or_default(), username, password }
            })
            .collect()
    }

    /// Points every supplier of `settings` at its system's simulator, with its credentials.
    pub fn configure(&self, settings: &mut Settings) {
        configure(settings, &self.endpoints(), &self.webhook_secret);
    }

    /// Sends each simulator's webhooks to the hub at `hub_url`.
    pub fn point_webhooks(&self, hub_url: &str) {
        let url = |i: usize| format!("{hub_url}/webhooks/{}", self.suppliers[i]);
        let secret = self.webhook_secret.clone();
        self.servicenow.set_webhook(Some(ServiceNowWebhook { url: url(0), secret: secret.clone(), display_value: DisplayMode::Raw }));
        self.jira.set_webhook(Some(JiraWebhook { url: url(1), secret: Some(secret.clone()) }));
        self.remedy.set_webhook(Some(RemedyWebhook { url: url(2), username: self.suppliers[2].clone(), password: secret }));
    }

    /// Answers a share of every simulator's API calls with faults, each simulator drawing from
    /// its own generator seeded from `spec.seed`.
    pub fn set_chance(&self, spec: &ChanceSpec) {
        let seeded = |i: u64| ChanceSpec { seed: spec.seed.wrapping_mul(4).wrapping_add(i), ..spec.clone() };
        self.servicenow.set_chance(seeded(0));
        self.jira.set_chance(seeded(1));
        self.remedy.set_chance(seeded(2));
        self.tmf621.set_chance(seeded(3));
    }

    /// Every ticket of every simulator, with its notes.
    pub fn tickets(&self) -> Vec<TicketState> {
        let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
        let mut out = Vec::new();
        for r in self.servicenow.incidents() {
            let id = text(&r, "sys_id");
            let notes = self.servicenow.journal(&id).iter().map(|j| NoteState { author: text(j, "sys_created_by"), text: text(j, "value") }).collect();
            out.push(TicketState {
                system: "servicenow".into(),
                supplier: self.suppliers[0].clone(),
                number: text(&r, "number"),
                reference: text(&r, "correlation_id"),
                status: text(&r, "state"),
                id,
                notes,
            });
        }
        for issue in self.jira.issues() {
            let f = &issue["fields"];
            // `siam-INC-…` carries the reference; `siam-hub` only marks the hub's issues.
            let labels = f["labels"].as_array().into_iter().flatten().filter_map(Value::as_str);
            let reference = labels.filter_map(|l| l.strip_prefix("siam-")).find(|r| *r != "hub").unwrap_or_default().to_string();
            let notes = f["comment"]["comments"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let author = c["author"]["emailAddress"].as_str().or(c["author"]["displayName"].as_str()).unwrap_or_default().to_string();
                    NoteState { author, text: plain_text(&c["body"]) }
                })
                .collect();
            out.push(TicketState {
                system: "jira".into(),
                supplier: self.suppliers[1].clone(),
                id: text(&issue, "id"),
                number: text(&issue, "key"),
                reference,
                status: f["status"]["name"].as_str().unwrap_or_default().to_string(),
                notes,
            });
        }
        for r in self.remedy.incidents() {
            let number = text(&r, "Incident Number");
            let notes = self
                .remedy
                .worklogs(&number)
                .iter()
                .map(|w| NoteState { author: text(w, "Submitter"), text: format!("{}\n{}", text(w, "Description"), text(w, "Detailed Description")) })
                .collect();
            out.push(TicketState {
                system: "remedy".into(),
                supplier: self.suppliers[2].clone(),
                id: number.clone(),
                number,
                reference: text(&r, "Vendor Ticket Number"),
                status: text(&r, "Status"),
                notes,
            });
        }
        for t in self.tmf621.tickets() {
            let id = text(&t, "id");
            let reference = t["externalId"]
                .as_str()
                .map(str::to_string)
                .or_else(|| t["externalIdentifier"].as_array().into_iter().flatten().find_map(|e| e["id"].as_str().map(str::to_string)))
                .unwrap_or_default();
            let notes = self.tmf621.stored_notes(&id).into_iter().map(|n| NoteState { author: n.author, text: n.text }).collect();
            out.push(TicketState { system: "tmf621".into(), supplier: self.suppliers[3].clone(), number: id.clone(), id, reference, status: text(&t, "status"), notes });
        }
        out
    }

    /// The state file as of now.
    pub fn state(&self, chance: &ChanceSpec) -> StateFile {
        StateFile {
            pid: std::process::id(),
            webhook_secret: self.webhook_secret.clone(),
            endpoints: self.endpoints(),
            chance: chance.clone(),
            taken_at: chrono::Utc::now().to_rfc3339(),
            tickets: self.tickets(),
        }
    }
}

/// Points every supplier of `settings` at its system's simulator in `endpoints`, with the
/// simulators' credentials and `webhook_secret` (for a hub whose simulators run elsewhere).
pub fn configure(settings: &mut Settings, endpoints: &[Endpoint], webhook_secret: &str) {
    let secret = |s: &str| Some(SecretRef::Value(SecretString::from(s.to_string())));
    for s in settings.suppliers.iter_mut() {
        let Some(e) = endpoints.iter().find(|e| e.system == s.system) else { continue };
        s.base_url = e.base_url.clone();
        s.username = e.username.clone();
        s.password = secret(&e.password);
        s.webhook_secret = secret(webhook_secret);
        match s.system.as_str() {
            "jira" => s.webhook_auth = WebhookAuth::HubSignature,
            "remedy" | "tmf621" => s.webhook_auth = WebhookAuth::Basic,
            _ => {}
        }
    }
}

/// The text of a rich-text document (Jira's ADF), or the string itself.
fn plain_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("text").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => o.get("content").map(plain_text).unwrap_or_default(),
        },
        Value::Array(items) => items.iter().map(plain_text).collect::<Vec<_>>().join(""),
        _ => String::new(),
    }
}

/// What `siam-hub sim` runs.
pub struct SimOptions {
    pub ports: [u16; 4],
    /// The hub the webhooks go to, when known.
    pub hub_url: Option<String>,
    pub webhook_secret: String,
    pub chance: ChanceSpec,
    /// How often the state file is rewritten with the tickets.
    pub snapshot_every: std::time::Duration,
}

/// Runs the simulators until SIGTERM or Ctrl-C, keeping `state_path` current; the last snapshot
/// is written on the way out.
pub async fn run(settings: &Settings, state_path: &Path, o: SimOptions) -> Result<(), String> {
    let estate = Estate::start(settings, o.ports, &o.webhook_secret)?;
    if let Some(hub) = &o.hub_url {
        estate.point_webhooks(hub.trim_end_matches('/'));
    }
    estate.set_chance(&o.chance);
    estate.state(&o.chance).write(state_path)?;
    for e in estate.endpoints() {
        crate::cli::say!("{:<10} simulator for {:<14} {}", e.system, e.supplier, e.base_url);
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut tick = tokio::time::interval(o.snapshot_every.max(std::time::Duration::from_millis(100)));
    loop {
        tokio::select! {
            _ = tick.tick() => estate.state(&o.chance).write(state_path)?,
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    estate.state(&o.chance).write(state_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_text_reads_as_its_text() {
        let adf = serde_json::json!({"type": "doc", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "on "}, {"type": "text", "text": "it"}]}]});
        assert_eq!(plain_text(&adf), "on it");
        assert_eq!(plain_text(&Value::String("plain".into())), "plain");
    }
}
