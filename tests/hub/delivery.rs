//! Tickets reaching the supplier, and hub-side changes following them, without echoes.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_new_incident_becomes_a_servicenow_ticket_with_mapped_fields() {
    let hub = TestHub::spawn().await;
    let started = std::time::Instant::now();
    let doc = hub.raise(&network_incident("Core switch down in building 2")).await;
    let r = doc["ref"].as_str().unwrap();
    let ticket = hub.wait_sim_ticket(r).await;
    let took = started.elapsed();
    assert_eq!(ticket["correlation_id"], r);
    assert_eq!(ticket["short_description"], "Core switch down in building 2");
    assert_eq!(ticket["description"], "No network on floor 3 of building 2");
    assert_eq!(ticket["impact"], "1");
    assert_eq!(ticket["urgency"], "2");
    assert_eq!(ticket["priority"], "2");
    assert_eq!(ticket["category"], "network");
    assert_eq!(ticket["cmdb_ci"]["value"], "core-switch-02");
    assert_eq!(ticket["caller_id"]["value"], "j.smith");
    // Latency is measured by the delivery benchmark; here it is only reported.
    eprintln!("supplier ticket created {took:?} after the incident was accepted");

    let doc = hub.wait_incident(r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    let leg = &doc["legs"][0];
    assert_eq!(leg["native_id"], ticket["sys_id"]);
    assert_eq!(leg["native_number"], ticket["number"]);
    assert_eq!(leg["native_status"], "1");
    assert_eq!(doc["status"], "assigned");
    let creates = hub.sim.request_log().iter().filter(|l| l.method == "POST").count();
    assert_eq!(creates, 1);
    let events: Vec<String> = hub.history(r).await.iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
    assert!(events.contains(&"leg.opened".to_string()), "{events:?}");
    hub.finish().await;
}

#[tokio::test]
async fn hub_changes_and_notes_reach_the_supplier_and_do_not_come_back_as_new() {
    let hub = TestHub::spawn().await;
    let doc = hub.raise(&network_incident("Slow VPN")).await;
    let r = doc["ref"].as_str().unwrap();
    let doc = hub.wait_incident(r, "assignment", |d| d["status"] == "assigned").await;
    let sys_id = doc["legs"][0]["native_id"].as_str().unwrap().to_string();

    let resp = hub.patch(r, doc["version"].as_i64().unwrap(), &json!({"status": "in_progress", "urgency": 1, "title": "Slow VPN for all staff"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["priority"], 1, "impact 1 x urgency 1 re-derives priority 1");
    let internal =
        hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "Caller is a VIP; do not phone before 10:00", "visibility": "internal"})).await;
    assert_eq!(internal.status(), StatusCode::CREATED);
    let public = hub.post(&format!("/api/v1/incidents/{r}/notes"), &hub.keys.service_desk, &json!({"text": "We are looking into it", "visibility": "public"})).await;
    assert_eq!(public.status(), StatusCode::CREATED);

    wait_for("the supplier to see the changes", || {
        let t = hub.sim.incident_by_correlation(r).first().cloned()?;
        (t["state"] == "2" && t["urgency"] == "1" && hub.sim.journal(&sys_id).len() == 2).then_some(())
    })
    .await;
    let ticket = hub.sim.incident_by_correlation(r)[0].clone();
    assert_eq!(ticket["short_description"], "Slow VPN for all staff");
    let journal = hub.sim.journal(&sys_id);
    let element = |text: &str| journal.iter().find(|j| j["value"] == text).map(|j| j["element"].as_str().unwrap().to_string());
    assert_eq!(element("Caller is a VIP; do not phone before 10:00").as_deref(), Some("work_notes"), "internal notes stay internal");
    assert_eq!(element("We are looking into it").as_deref(), Some("comments"));

    // The simulator sends a webhook for every change, the hub's own included: none of them may
    // be taken for a supplier change or a new note.
    let settled = hub.settle(r).await;
    assert_eq!(settled["notes"].as_array().unwrap().len(), 2, "{}", settled["notes"]);
    assert_eq!(settled["status"], "in_progress");
    assert_eq!(settled["title"], "Slow VPN for all staff");
    let from_supplier: Vec<Value> = hub
        .history(r)
        .await
        .into_iter()
        .filter(|e| e["source"] == format!("supplier:{SUPPLIER}") && matches!(e["type"].as_str(), Some("incident.status_changed" | "incident.updated" | "incident.note_added")))
        .filter(|e| e["data"]["to"] != "assigned")
        .collect();
    assert!(from_supplier.is_empty(), "echoes were applied: {from_supplier:#?}");
    // A reconciliation sweep over the same ticket finds nothing new either.
    let report = hub.reconcile().await;
    assert_eq!(report["notes_added"], 0);
    assert_eq!(hub.incident(r).await["version"], settled["version"]);
    hub.finish().await;
}

#[tokio::test]
async fn domain_events_are_published_as_cloudevents() {
    use futures_util::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    let hub = TestHub::spawn().await;
    // The event exchange exists once the hub has declared its topology.
    hub.wait_ready().await;
    let conn = lapin::Connection::connect(
        &hub.settings.amqp_url,
        lapin::ConnectionProperties::default().with_executor(tokio_executor_trait::Tokio::current()).with_reactor(tokio_reactor_trait::Tokio),
    )
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = ch.queue_declare("", QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() }, FieldTable::default()).await.unwrap();
    let exchange = format!("{}.events", hub.settings.broker.prefix);
    ch.queue_bind(q.name().as_str(), &exchange, "incident.#", QueueBindOptions::default(), FieldTable::default()).await.unwrap();
    let mut consumer = ch.basic_consume(q.name().as_str(), "t", BasicConsumeOptions { no_ack: true, ..Default::default() }, FieldTable::default()).await.unwrap();

    let doc = hub
        .http
        .post(hub.url("/api/v1/incidents"))
        .bearer_auth(&hub.keys.service_desk)
        .header("X-Correlation-Id", "corr-42")
        .json(&network_incident("Events"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let delivery = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next()).await.expect("an event arrives").unwrap().unwrap();
    let ce: Value = serde_json::from_slice(&delivery.data).unwrap();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "incident.created");
    assert_eq!(ce["subject"], doc["ref"]);
    assert_eq!(ce["correlationid"], "corr-42");
    assert_eq!(ce["source"], "/siam-hub");
    assert!(ce["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(delivery.properties.message_id().as_ref().unwrap().as_str(), ce["id"].as_str().unwrap());
    hub.finish().await;
}

#[tokio::test]
async fn a_dispatch_the_broker_cannot_route_stays_in_the_outbox_until_its_queue_is_bound_again() {
    use lapin::options::QueueBindOptions;
    use lapin::types::FieldTable;
    let hub = TestHub::spawn().await;
    hub.wait_ready().await;
    let prefix = &hub.settings.broker.prefix;
    let (queue, exchange, key) = (format!("{prefix}.dispatch.{SUPPLIER}"), format!("{prefix}.events"), format!("dispatch.{SUPPLIER}"));
    let (_conn, ch) = hub.broker_channel().await;
    ch.queue_unbind(&queue, &exchange, &key, FieldTable::default()).await.unwrap();

    let r = hub.raise(&network_incident("Nowhere to go")).await["ref"].as_str().unwrap().to_string();
    let unpublished = || {
        let store = hub.app().store.clone();
        let key = key.clone();
        async move {
            store
                .run(move |c| {
                    use diesel::prelude::*;
                    use siam_hub::store::schema::outbox;
                    Ok(outbox::table.filter(outbox::routing_key.eq(key)).filter(outbox::published_at.is_null()).count().get_result::<i64>(c)?)
                })
                .await
                .unwrap()
        }
    };
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(unpublished().await, 1, "the unroutable dispatch is not marked published");
    assert!(hub.sim.incident_by_correlation(&r).is_empty());

    ch.queue_bind(&queue, &exchange, &key, QueueBindOptions::default(), FieldTable::default()).await.unwrap();
    hub.wait_sim_ticket(&r).await;
    hub.wait_incident(&r, "the leg to open", |d| d["legs"][0]["state"] == "open").await;
    // Opening the leg may queue further dispatches of its own; each is published in turn.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while unpublished().await > 0 {
        assert!(tokio::time::Instant::now() < deadline, "dispatches stay unpublished once the queue is bound again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(hub.sim.incident_by_correlation(&r).len(), 1);
    hub.finish().await;
}

#[tokio::test]
async fn two_hubs_on_one_broker_never_handle_one_ticket_at_once() {
    use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use siam_hub::bus::{Bus, ConsumerSpec, Handler, Incoming, Outcome, Topology};
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let hub = TestHub::spawn().await;
    hub.wait_ready().await;
    let queue = format!("{}.two-hubs", hub.settings.broker.prefix);
    let (_conn, ch) = hub.broker_channel().await;
    ch.queue_declare(&queue, QueueDeclareOptions { auto_delete: true, ..Default::default() }, FieldTable::default()).await.unwrap();
    let tickets = ["INC-000001", "INC-000002", "INC-000003"];
    for i in 0..36 {
        let body = json!({"id": format!("m{i}"), "subject": tickets[i % tickets.len()]});
        ch.basic_publish("", &queue, BasicPublishOptions::default(), &serde_json::to_vec(&body).unwrap(), Default::default()).await.unwrap().await.unwrap();
    }

    // What each ticket has in hand at once, and the most ever seen: per ticket and overall.
    let in_hand: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (most_per_ticket, most_overall, handled) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let handler: Handler = {
        let (in_hand, most_per_ticket, most_overall, handled) = (in_hand.clone(), most_per_ticket.clone(), most_overall.clone(), handled.clone());
        Arc::new(move |msg: Incoming| {
            let (in_hand, most_per_ticket, most_overall, handled) = (in_hand.clone(), most_per_ticket.clone(), most_overall.clone(), handled.clone());
            Box::pin(async move {
                let subject = msg.payload["subject"].as_str().unwrap_or_default().to_string();
                {
                    let mut map = in_hand.lock().unwrap();
                    *map.entry(subject.clone()).or_default() += 1;
                    most_per_ticket.fetch_max(map[&subject], Ordering::SeqCst);
                    most_overall.fetch_max(map.values().sum(), Ordering::SeqCst);
                }
                tokio::time::sleep(std::time::Duration::from_millis(60)).await;
                *in_hand.lock().unwrap().get_mut(&subject).unwrap() -= 1;
                handled.fetch_add(1, Ordering::SeqCst);
                Outcome::Done
            })
        })
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut hubs = Vec::new();
    for _ in 0..2 {
        // Each "hub" has its own pool and claims connection, as a second process would.
        let store = siam_hub::store::Store::connect(&hub.settings.database_url, 4).unwrap();
        let bus = Bus::new(&hub.settings.amqp_url, Topology::new(&hub.settings.broker, vec![]), store);
        let spec = ConsumerSpec { queue: queue.clone(), supplier: None, prefetch: 16, handler: handler.clone() };
        hubs.push(tokio::spawn(bus.run(vec![spec], stopped.clone())));
    }
    wait_for("both hubs to handle every message", || (handled.load(Ordering::SeqCst) == 36).then_some(())).await;
    stop.send_replace(true);
    for h in hubs {
        h.await.unwrap();
    }
    assert_eq!(most_per_ticket.load(Ordering::SeqCst), 1, "one ticket's messages were handled by two hubs at once");
    assert!(most_overall.load(Ordering::SeqCst) >= 2, "different tickets should still be handled side by side");
    hub.finish().await;
}
