//! Which supplier gets a new incident: the first rule whose every stated field (service, CI,
//! category) matches, else the integrator's default queue.

use crate::config::{RoutingRule, Settings, QUEUE_SYSTEM};
use crate::domain::NewIncident;
use crate::store::record::Route;

#[derive(Debug, Clone)]
pub struct Router {
    rules: Vec<RoutingRule>,
    default_queue: String,
    systems: Vec<(String, String)>,
}

impl Router {
    pub fn new(settings: &Settings) -> Self {
        Router {
            rules: settings.routing.rules.clone(),
            default_queue: settings.routing.default_queue.clone(),
            systems: settings.suppliers.iter().map(|s| (s.id.clone(), s.system.clone())).collect(),
        }
    }

    pub fn route(&self, incident: &NewIncident) -> Route {
        let eq = |rule: &Option<String>, value: &Option<String>| match rule {
            None => true,
            Some(r) => value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(r)),
        };
        let hit = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| eq(&r.service, &incident.service) && eq(&r.ci, &incident.ci) && eq(&r.category, &incident.category));
        let (supplier, rule) = match hit {
            Some((i, r)) => (r.supplier.clone(), format!("rule {}", i + 1)),
            None => (self.default_queue.clone(), "default".to_string()),
        };
        let system = self
            .systems
            .iter()
            .find(|(id, _)| *id == supplier)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| QUEUE_SYSTEM.to_string());
        Route { external: system != QUEUE_SYSTEM, supplier, system, rule }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Impact, Urgency};

    fn incident(service: Option<&str>, ci: Option<&str>, category: Option<&str>) -> NewIncident {
        NewIncident {
            title: "t".into(),
            description: String::new(),
            service: service.map(Into::into),
            ci: ci.map(Into::into),
            impact: Impact::new(2).unwrap(),
            urgency: Urgency::new(2).unwrap(),
            caller: "c".into(),
            category: category.map(Into::into),
        }
    }

    #[test]
    fn first_matching_rule_wins_and_default_catches_the_rest() {
        let settings = Settings::from_toml(
            r#"
            [[suppliers]]
            id = "net"
            name = "Network"
            system = "servicenow"
            base_url = "http://127.0.0.1:1"
            [[suppliers]]
            id = "apps"
            name = "Apps"
            system = "servicenow"
            base_url = "http://127.0.0.1:2"
            [[routing.rules]]
            service = "network"
            category = "hardware"
            supplier = "apps"
            [[routing.rules]]
            service = "network"
            supplier = "net"
            [[routing.rules]]
            ci = "crm-db-01"
            supplier = "apps"
            "#,
        )
        .unwrap();
        let r = Router::new(&settings);
        assert_eq!(r.route(&incident(Some("network"), None, None)).supplier, "net");
        assert_eq!(r.route(&incident(Some("Network"), None, Some("hardware"))).supplier, "apps");
        assert_eq!(r.route(&incident(None, Some("crm-db-01"), None)).supplier, "apps");
        let d = r.route(&incident(Some("payroll"), None, None));
        assert_eq!((d.supplier.as_str(), d.external, d.rule.as_str()), ("integrator", false, "default"));
    }
}
