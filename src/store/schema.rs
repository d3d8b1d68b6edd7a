// Diesel table definitions; kept in step with `migrations/` by hand.

diesel::table! {
    suppliers (id) {
        id -> Text,
        name -> Text,
        system -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    routing_rules (id) {
        id -> Int4,
        position -> Int4,
        service -> Nullable<Text>,
        ci -> Nullable<Text>,
        category -> Nullable<Text>,
        supplier_id -> Text,
    }
}

diesel::table! {
    incidents (id) {
        id -> Int8,
        #[sql_name = "ref"]
        reference -> Text,
        title -> Text,
        description -> Text,
        status -> Text,
        hold_reason -> Nullable<Text>,
        impact -> Int2,
        urgency -> Int2,
        priority -> Int2,
        priority_source -> Text,
        category -> Nullable<Text>,
        service -> Nullable<Text>,
        ci -> Nullable<Text>,
        caller -> Text,
        assigned_supplier -> Nullable<Text>,
        resolution_code -> Nullable<Text>,
        resolution_notes -> Nullable<Text>,
        opened_at -> Timestamptz,
        updated_at -> Timestamptz,
        resolved_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        version -> Int4,
        caused_by_change -> Nullable<Text>,
        fixed_by_change -> Nullable<Text>,
    }
}

diesel::table! {
    legs (id) {
        id -> Int8,
        incident_id -> Int8,
        supplier_id -> Text,
        system -> Text,
        state -> Text,
        native_id -> Nullable<Text>,
        native_number -> Nullable<Text>,
        native_status -> Nullable<Text>,
        url -> Nullable<Text>,
        native_revision -> Nullable<Int8>,
        native_updated_at -> Nullable<Timestamptz>,
        baseline -> Jsonb,
        unmapped -> Jsonb,
        last_error -> Nullable<Text>,
        opened_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        synced_at -> Nullable<Timestamptz>,
        pushing -> Jsonb,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        event_id -> Uuid,
        incident_id -> Int8,
        #[sql_name = "type"]
        kind -> Text,
        source -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
        correlation_id -> Nullable<Text>,
    }
}

diesel::table! {
    notes (id) {
        id -> Int8,
        incident_id -> Int8,
        visibility -> Text,
        author -> Text,
        body -> Text,
        origin -> Text,
        native_id -> Nullable<Text>,
        content_hash -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    note_deliveries (note_id, leg_id) {
        note_id -> Int8,
        leg_id -> Int8,
        delivered_at -> Timestamptz,
        confirmed -> Bool,
        native_id -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        message_id -> Uuid,
        routing_key -> Text,
        payload -> Jsonb,
        created_at -> Timestamptz,
        lease_until -> Nullable<Timestamptz>,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    inbox (consumer, message_id) {
        consumer -> Text,
        message_id -> Text,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    idempotency_keys (principal, key) {
        principal -> Text,
        key -> Text,
        request_hash -> Text,
        incident_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Int8,
        message_id -> Uuid,
        routing_key -> Text,
        payload -> Jsonb,
        supplier_id -> Nullable<Text>,
        incident_ref -> Nullable<Text>,
        reason -> Text,
        created_at -> Timestamptz,
        replayed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> Int8,
        key_hash -> Text,
        prefix -> Text,
        role -> Text,
        supplier_id -> Nullable<Text>,
        label -> Nullable<Text>,
        created_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    poll_state (supplier_id) {
        supplier_id -> Text,
        watermark -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sla_dirty (incident_id) {
        incident_id -> Int8,
        seq -> Int8,
        marked_at -> Timestamptz,
    }
}

diesel::table! {
    sla_configuration (id) {
        id -> Int4,
        fingerprint -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    sla_tickets (incident_id) {
        incident_id -> Int8,
        #[sql_name = "ref"]
        reference -> Text,
        opened_at -> Timestamptz,
        priority -> Int2,
        open -> Bool,
        holder -> Nullable<Text>,
        handoffs -> Int4,
        returns -> Int4,
        computed_at -> Timestamptz,
    }
}

diesel::table! {
    sla_clocks (incident_id, clock_key) {
        incident_id -> Int8,
        clock_key -> Text,
        #[sql_name = "ref"]
        reference -> Text,
        opened_at -> Timestamptz,
        contract -> Text,
        supplier -> Nullable<Text>,
        metric -> Text,
        cycle -> Int4,
        priority -> Int2,
        target_secs -> Int8,
        elapsed_secs -> Int8,
        state -> Text,
        started_at -> Timestamptz,
        stopped_at -> Nullable<Timestamptz>,
        breach_at -> Nullable<Timestamptz>,
        breached -> Bool,
        pauses -> Jsonb,
        holdings -> Jsonb,
        next_alert_at -> Nullable<Timestamptz>,
        computed_at -> Timestamptz,
    }
}

diesel::table! {
    sla_alerts (incident_id, clock_key, threshold) {
        incident_id -> Int8,
        clock_key -> Text,
        threshold -> Int2,
        event_id -> Uuid,
        raised_at -> Timestamptz,
    }
}

diesel::joinable!(legs -> incidents (incident_id));
diesel::joinable!(events -> incidents (incident_id));
diesel::joinable!(notes -> incidents (incident_id));
diesel::joinable!(note_deliveries -> notes (note_id));
diesel::joinable!(note_deliveries -> legs (leg_id));

diesel::allow_tables_to_appear_in_same_query!(
    suppliers,
    routing_rules,
    incidents,
    legs,
    events,
    notes,
    note_deliveries,
    outbox,
    inbox,
    idempotency_keys,
    dead_letters,
    api_keys,
    poll_state,
    blob_chunks,
    blobs,
    attachments,
    attachment_deliveries,
    inbound_refusals,
    sla_configuration,
    sla_dirty,
    sla_tickets,
    sla_clocks,
    sla_alerts,
    staged_uploads,
);

diesel::table! {
    blob_chunks (upload_id, seq) {
        upload_id -> Uuid,
        seq -> Int4,
        data -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    blobs (sha256) {
        sha256 -> Text,
        upload_id -> Uuid,
        size -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    attachments (id) {
        id -> Int8,
        incident_id -> Int8,
        sha256 -> Text,
        file_name -> Text,
        content_type -> Text,
        size -> Int8,
        origin -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    attachment_deliveries (attachment_id, leg_id) {
        attachment_id -> Int8,
        leg_id -> Int8,
        state -> Text,
        reason -> Nullable<Text>,
        native_id -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::table! {
    inbound_refusals (leg_id, native_id) {
        leg_id -> Int8,
        native_id -> Text,
        file_name -> Text,
        reason -> Text,
        at -> Timestamptz,
    }
}

diesel::joinable!(attachment_deliveries -> attachments (attachment_id));
diesel::joinable!(attachment_deliveries -> legs (leg_id));

diesel::table! {
    staged_uploads (upload_id) {
        upload_id -> Uuid,
        touched_at -> Timestamptz,
    }
}

diesel::table! {
    browser_sessions (id_hash) {
        id_hash -> Text,
        key_id -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(browser_sessions -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(browser_sessions, api_keys);

diesel::table! {
    changes (id) {
        id -> Int8,
        #[sql_name = "ref"]
        reference -> Text,
        title -> Text,
        description -> Text,
        #[sql_name = "type"]
        change_type -> Text,
        status -> Text,
        on_hold -> Bool,
        hold_reason -> Nullable<Text>,
        risk -> Int2,
        impact -> Int2,
        urgency -> Int2,
        services -> Array<Text>,
        cis -> Array<Text>,
        planned_start -> Nullable<Timestamptz>,
        planned_end -> Nullable<Timestamptz>,
        actual_start -> Nullable<Timestamptz>,
        actual_end -> Nullable<Timestamptz>,
        implementation_plan -> Text,
        backout_plan -> Text,
        test_plan -> Text,
        template -> Nullable<Text>,
        outcome -> Nullable<Text>,
        outcome_notes -> Nullable<Text>,
        requested_by -> Text,
        opened_at -> Timestamptz,
        updated_at -> Timestamptz,
        closed_at -> Nullable<Timestamptz>,
        version -> Int4,
    }
}

diesel::table! {
    change_legs (id) {
        id -> Int8,
        change_id -> Int8,
        supplier_id -> Text,
        system -> Text,
        state -> Text,
        native_number -> Nullable<Text>,
        planned_start -> Nullable<Timestamptz>,
        planned_end -> Nullable<Timestamptz>,
        depends_on -> Array<Text>,
        backout_requested_at -> Nullable<Timestamptz>,
        opened_at -> Timestamptz,
        updated_at -> Timestamptz,
        native_id -> Nullable<Text>,
        native_status -> Nullable<Text>,
        native_kept -> Jsonb,
        unmapped -> Jsonb,
        pushed -> Nullable<Jsonb>,
        backout_sent_at -> Nullable<Timestamptz>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    change_approvals (id) {
        id -> Int8,
        change_id -> Int8,
        kind -> Text,
        approver -> Text,
        approve -> Bool,
        comment -> Text,
        decided_at -> Timestamptz,
        voided_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    change_conflicts (change_id, key) {
        change_id -> Int8,
        key -> Text,
        kind -> Text,
        other_ref -> Nullable<Text>,
        subject -> Text,
        period_start -> Timestamptz,
        period_end -> Timestamptz,
        hard -> Bool,
        detail -> Text,
        detected_at -> Timestamptz,
        acknowledged_by -> Nullable<Text>,
        ack_reason -> Nullable<Text>,
        acknowledged_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    change_events (id) {
        id -> Int8,
        event_id -> Uuid,
        change_id -> Int8,
        #[sql_name = "type"]
        kind -> Text,
        source -> Text,
        data -> Jsonb,
        occurred_at -> Timestamptz,
        correlation_id -> Nullable<Text>,
    }
}

diesel::table! {
    change_notes (id) {
        id -> Int8,
        change_id -> Int8,
        visibility -> Text,
        author -> Text,
        body -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    change_idempotency_keys (principal, key) {
        principal -> Text,
        key -> Text,
        request_hash -> Text,
        change_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    change_attachments (id) {
        id -> Int8,
        change_id -> Int8,
        sha256 -> Text,
        file_name -> Text,
        content_type -> Text,
        size -> Int8,
        author -> Text,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(change_attachments -> changes (change_id));
diesel::joinable!(change_legs -> changes (change_id));
diesel::joinable!(change_approvals -> changes (change_id));
diesel::joinable!(change_conflicts -> changes (change_id));
diesel::joinable!(change_events -> changes (change_id));
diesel::joinable!(change_notes -> changes (change_id));
diesel::allow_tables_to_appear_in_same_query!(changes, change_attachments, change_legs, change_approvals, change_conflicts, change_events, change_notes, change_idempotency_keys);
