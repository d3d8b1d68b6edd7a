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
        self.route_excluding(&incident.service, &incident.ci, &incident.category, &[])
    }

    /// The first matching rule whose supplier is not in `excluded` (suppliers that handed the
    /// ticket back), else the default queue.
    pub fn route_excluding(&self, service: &Option<String>, ci: &Option<String>, category: &Option<String>, excluded: &[String]) -> Route {
        let eq = |rule: &Option<String>, value: &Option<String>| match rule {
            None => true,
            Some(r) => value.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(r)),
        };
        let hit = self.rules.iter().enumerate().find(|(_, r)| !excluded.contains(&r.supplier) && eq(&r.service, service) && eq(&r.ci, ci) && eq(&r.category, category));
        let (supplier, rule) = match hit {
            Some((i, r)) => (r.supplier.clone(), format!("rule {}", i + 1)),
            None => (self.default_queue.clone(), "default".to_string()),
        };
        self.to(&supplier, rule)
    }

    /// A route to a named supplier (or queue).
    /// Where the work of a change goes: the supplier routing gives each of its services and each
    /// of its CIs, once each, in the order found.
    pub fn for_change(&self, services: &[String], cis: &[String]) -> Vec<Route> {
        let mut out: Vec<Route> = Vec::new();
        let asked = services.iter().map(|s| (Some(s.clone()), None)).chain(cis.iter().map(|c| (None, Some(c.clone()))));
        for (service, ci) in asked {
            let route = self.route_excluding(&service, &ci, &None, &[]);
            if !out.iter().any(|r| r.supplier == route.supplier) {
                out.push(route);
            }
        }
        out
    }

    pub fn to(&self, supplier: &str, rule: String) -> Route {
        let supplier = supplier.to_string();
        let system = self.systems.iter().find(|(id, _)| *id == supplier).map(|(_, s)| s.clone()).unwrap_or_else(|| QUEUE_SYSTEM.to_string());
        Route { external: system != QUEUE_SYSTEM, supplier, system, rule }
    }

    pub fn default_queue(&self) -> &str {
        &self.default_queue
    }

    /// A configured supplier or the default queue.
    pub fn is_known(&self, supplier: &str) -> bool {
        supplier == self.default_queue || self.systems.iter().any(|(id, _)| id == supplier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Impact, Urgency};

    #[test]
    fn excluded_suppliers_are_skipped() {
        let settings = Settings::from_toml(
            r#"
            [[suppliers]]
            id = "a"
            name = "A"
            system = "servicenow"
            base_url = "http://127.0.0.1:1"
            [[suppliers]]
            id = "b"
            name = "B"
            system = "servicenow"
            base_url = "http://127.0.0.1:2"
            [[routing.rules]]
            service = "network"
            supplier = "a"
            [[routing.rules]]
            service = "network"
            supplier = "b"
            "#,
        )
        .unwrap();
        let r = Router::new(&settings);
        let svc = Some("network".to_string());
        assert_eq!(r.route_excluding(&svc, &None, &None, &[]).supplier, "a");
        assert_eq!(r.route_excluding(&svc, &None, &None, &["a".into()]).supplier, "b");
        let last = r.route_excluding(&svc, &None, &None, &["a".into(), "b".into()]);
        assert_eq!((last.supplier.as_str(), last.external), ("integrator", false));
        assert!(r.is_known("b") && r.is_known("integrator") && !r.is_known("zzz"));
    }

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
