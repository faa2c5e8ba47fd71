//! Diesel's view of the tables created by `migrations/`.

diesel::table! {
    products (id) {
        id -> Uuid,
        sku -> Text,
        name -> Text,
        kind -> Text,
        price_minor -> Int8,
        currency -> Text,
        stock -> Nullable<Int8>,
        low_stock_threshold -> Nullable<Int8>,
        active -> Bool,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        external_id -> Nullable<Text>,
    }
}

diesel::table! {
    stock_adjustments (id) {
        id -> Uuid,
        product_id -> Uuid,
        delta -> Int8,
        reason -> Text,
        stock_after -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    customers (id) {
        id -> Uuid,
        name -> Text,
        email -> Nullable<Text>,
        email_key -> Nullable<Text>,
        city -> Text,
        phone -> Nullable<Text>,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email_sealed -> Nullable<Bytea>,
        email_index -> Nullable<Bytea>,
        phone_sealed -> Nullable<Bytea>,
        data_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    orders (id) {
        id -> Uuid,
        number -> Text,
        customer_id -> Uuid,
        status -> Text,
        scheduled_at -> Timestamptz,
        total_minor -> Int8,
        currency -> Text,
        note -> Nullable<Text>,
        payment_status -> Nullable<Text>,
        payment_reference -> Nullable<Text>,
        fulfillment_status -> Nullable<Text>,
        fulfillment_reference -> Nullable<Text>,
        fulfillment_attempts -> Int4,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    order_lines (order_id, line_no) {
        order_id -> Uuid,
        line_no -> Int4,
        product_id -> Uuid,
        sku -> Text,
        name -> Text,
        quantity -> Int4,
        unit_price_minor -> Int8,
        reserves_stock -> Bool,
    }
}

diesel::table! {
    order_number_counters (day) {
        day -> Date,
        last_value -> Int4,
    }
}

diesel::table! {
    baskets (id) {
        id -> Uuid,
        customer_id -> Nullable<Uuid>,
        status -> Text,
        total_minor -> Int8,
        currency -> Text,
        expires_at -> Timestamptz,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    basket_lines (basket_id, line_no) {
        basket_id -> Uuid,
        line_no -> Int4,
        product_id -> Uuid,
        sku -> Text,
        name -> Text,
        quantity -> Int4,
        unit_price_minor -> Int8,
        reserves_stock -> Bool,
    }
}

diesel::joinable!(order_lines -> orders (order_id));
diesel::joinable!(basket_lines -> baskets (basket_id));
diesel::joinable!(orders -> customers (customer_id));
diesel::joinable!(stock_adjustments -> products (product_id));

diesel::allow_tables_to_appear_in_same_query!(
    products,
    stock_adjustments,
    customers,
    orders,
    order_lines,
    order_number_counters,
    baskets,
    basket_lines,
);

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        email_key -> Text,
        role -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        version -> Int4,
    }
}

diesel::table! {
    refresh_tokens (hash) {
        hash -> Text,
        user_id -> Uuid,
        family_id -> Uuid,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_clients (id) {
        id -> Uuid,
        name -> Text,
        email_plaintext -> Nullable<Text>,
        ip_allowlist -> Array<Text>,
        rate_limit_per_minute -> Int4,
        rate_limit_burst -> Int4,
        key_digest -> Text,
        key_prefix -> Text,
        key_issued_at -> Timestamptz,
        version -> Int4,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        email_sealed -> Nullable<Bytea>,
        data_key_id -> Nullable<Text>,
    }
}

diesel::table! {
    jobs (name) {
        name -> Text,
        schedule -> Text,
        enabled -> Bool,
        next_run_at -> Nullable<Timestamptz>,
        version -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    job_runs (id) {
        id -> Uuid,
        job_name -> Text,
        trigger -> Text,
        status -> Text,
        requested_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        instance -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamptz>,
        attempts -> Int4,
        error -> Nullable<Text>,
    }
}

diesel::joinable!(job_runs -> jobs (job_name));
diesel::allow_tables_to_appear_in_same_query!(jobs, job_runs);

diesel::table! {
    idempotency_keys (owner, key) {
        owner -> Text,
        key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Int4>,
        response_header_names -> Nullable<Array<Text>>,
        response_header_values -> Nullable<Array<Text>>,
        response_body -> Nullable<Bytea>,
        order_id -> Nullable<Uuid>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        lease_until -> Timestamptz,
    }
}

diesel::table! {
    checkouts (order_id) {
        order_id -> Uuid,
        basket_id -> Uuid,
        state -> Text,
        payment_token -> Text,
        payment_id -> Nullable<Text>,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Timestamptz,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        claim_token -> Nullable<Uuid>,
        claimed_until -> Nullable<Timestamptz>,
        interrupted -> Bool,
    }
}

diesel::table! {
    outbox (id) {
        id -> Uuid,
        kind -> Text,
        order_id -> Uuid,
        target_status -> Nullable<Text>,
        status -> Text,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        delivered_at -> Nullable<Timestamptz>,
        claim_token -> Nullable<Uuid>,
        claimed_until -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(checkouts -> orders (order_id));
diesel::allow_tables_to_appear_in_same_query!(checkouts, orders);
