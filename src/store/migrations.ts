import type { Migration } from './database';

/**
 * The store's schema, in order. Append; never edit a migration that has shipped. Other modules
 * (the lease engine) add theirs here with the next free id.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    id: 1,
    name: 'chain outbox and block cursors',
    up: `
      CREATE TABLE chain_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        intent_key TEXT NOT NULL UNIQUE,
        sender TEXT NOT NULL,
        chain_id INTEGER NOT NULL,
        to_address TEXT NOT NULL,
        data TEXT NOT NULL,
        value TEXT NOT NULL DEFAULT '0',
        gas_limit TEXT,
        nonce INTEGER,
        state TEXT NOT NULL CHECK (state IN ('queued', 'pending', 'confirmed', 'reverted', 'failed')),
        tx_hash TEXT,
        block_number INTEGER,
        error TEXT,
        error_code TEXT,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX chain_outbox_open ON chain_outbox (sender, state, id);
      CREATE INDEX chain_outbox_nonce ON chain_outbox (sender, chain_id, nonce) WHERE nonce IS NOT NULL;

      CREATE TABLE chain_outbox_attempt (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id INTEGER NOT NULL REFERENCES chain_outbox (id),
        tx_hash TEXT NOT NULL UNIQUE,
        raw_tx TEXT NOT NULL,
        max_fee_per_gas TEXT NOT NULL,
        max_priority_fee_per_gas TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        broadcast_at INTEGER
      );
      CREATE INDEX chain_outbox_attempt_outbox ON chain_outbox_attempt (outbox_id, id);

      CREATE TABLE chain_cursor (
        name TEXT PRIMARY KEY,
        block_number INTEGER NOT NULL,
        block_hash TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    id: 2,
    name: 'quotes, leases and their transitions, usage records, checkpoints, chain inbox, api nonces',
    up: `
      CREATE TABLE store_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );

      CREATE TABLE quotes (
        nonce TEXT PRIMARY KEY,
        quote_hash TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        manifest_json TEXT NOT NULL,
        manifest_hash TEXT NOT NULL,
        quote_json TEXT NOT NULL,
        signature TEXT NOT NULL,
        allocation_json TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'used', 'expired', 'released')),
        created_at INTEGER NOT NULL
      );
      CREATE INDEX quotes_open ON quotes (state, expires_at);

      CREATE TABLE leases (
        lease_id TEXT PRIMARY KEY,
        runtime_id TEXT NOT NULL UNIQUE,
        quote_nonce TEXT,
        tenant TEXT NOT NULL,
        manifest_hash TEXT NOT NULL,
        deposit TEXT NOT NULL,
        rates_json TEXT NOT NULL,
        max_rate_per_second TEXT NOT NULL,
        max_duration INTEGER NOT NULL,
        opened_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        end_reason TEXT,
        exit_code INTEGER,
        finalised INTEGER NOT NULL DEFAULT 0,
        detail TEXT,
        closed_at INTEGER,
        container_id TEXT,
        started_at INTEGER,
        ended_at INTEGER,
        image_digest TEXT,
        timeline_json TEXT,
        allocation_released INTEGER NOT NULL DEFAULT 0,
        final_usage_done INTEGER NOT NULL DEFAULT 0,
        result_digest TEXT,
        logs_sha256 TEXT,
        chain_settled INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      );
      CREATE INDEX leases_state ON leases (state);

      CREATE TABLE lease_transitions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        lease_id TEXT NOT NULL REFERENCES leases (lease_id),
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        event TEXT NOT NULL,
        reason TEXT,
        at INTEGER NOT NULL
      );
      CREATE INDEX lease_transitions_lease ON lease_transitions (lease_id, id);

      CREATE TABLE usage_records (
        lease_id TEXT NOT NULL REFERENCES leases (lease_id),
        seq INTEGER NOT NULL,
        t0 INTEGER NOT NULL,
        t1 INTEGER NOT NULL,
        cpu_millis TEXT NOT NULL,
        memory_byte_seconds TEXT NOT NULL,
        gpu_millis TEXT NOT NULL,
        rx_bytes TEXT NOT NULL,
        tx_bytes TEXT NOT NULL,
        amount TEXT NOT NULL,
        PRIMARY KEY (lease_id, seq)
      );

      CREATE TABLE checkpoints (
        lease_id TEXT NOT NULL REFERENCES leases (lease_id),
        seq INTEGER NOT NULL,
        usage_root TEXT NOT NULL,
        cumulative_amount TEXT NOT NULL,
        period_end INTEGER NOT NULL,
        result_digest TEXT NOT NULL,
        record_count INTEGER NOT NULL,
        final INTEGER NOT NULL DEFAULT 0,
        provider_sig TEXT NOT NULL,
        tenant_sig TEXT,
        status TEXT NOT NULL CHECK (status IN ('signed', 'redeemed', 'claimed', 'final')),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (lease_id, seq)
      );

      CREATE TABLE chain_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        lease_id TEXT,
        args_json TEXT NOT NULL,
        block_number INTEGER NOT NULL,
        log_index INTEGER NOT NULL,
        handled INTEGER NOT NULL DEFAULT 0,
        UNIQUE (block_number, log_index)
      );
      CREATE INDEX chain_inbox_open ON chain_inbox (handled, id);

      CREATE TABLE api_nonces (
        signer TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (signer, nonce)
      );
      CREATE INDEX api_nonces_expiry ON api_nonces (expires_at);
    `,
  },
  {
    id: 3,
    name: 'lease states fold the four completion flags (finalised, final usage done, allocation released, chain settled)',
    // The old machine: opened = pulling the image, pulling = starting the container, and an ended
    // lease stayed `stopping`/`failed`/`rejected` while four flags said how far its end had got.
    // Each flag combination is one state of the new machine; the order of the updates matters.
    up: `
      UPDATE leases SET state = 'settled' WHERE chain_settled = 1 AND state IN ('stopping', 'settled');
      UPDATE leases SET state = 'settling' WHERE chain_settled = 0 AND finalised = 1 AND final_usage_done = 1;
      UPDATE leases SET state = 'finishing' WHERE chain_settled = 0 AND finalised = 1 AND final_usage_done = 0;
      UPDATE leases SET state = 'settling', end_reason = 'refused' WHERE state = 'rejected' AND chain_settled = 0;
      UPDATE leases SET end_reason = 'refused' WHERE state = 'rejected';
      UPDATE leases SET state = 'starting' WHERE state = 'pulling';
      UPDATE leases SET state = 'pulling' WHERE state = 'opened';
      UPDATE leases SET state = 'rejected', end_reason = 'refused' WHERE state = 'expired';
      ALTER TABLE leases DROP COLUMN finalised;
      ALTER TABLE leases DROP COLUMN final_usage_done;
      ALTER TABLE leases DROP COLUMN allocation_released;
      ALTER TABLE leases DROP COLUMN chain_settled;
    `,
  },
  {
    id: 4,
    name: 'settlement v2: usage records keep their running total, a lease keeps its allocation (its terms as LeaseOpened announced them)',
    // Every v2 call passes the lease's terms back and every record carries the sum of the amounts
    // up to it. The rate cap is gone (the cap follows from rates x allocation). Leases from before
    // were opened on the v1 contract, which a v2 daemon does not settle: they keep a zero
    // allocation, and their records the totals their amounts add up to.
    up: `
      ALTER TABLE usage_records ADD COLUMN total TEXT NOT NULL DEFAULT '0';
      UPDATE usage_records SET total = (
        SELECT CAST(SUM(CAST(u.amount AS INTEGER)) AS TEXT) FROM usage_records u
        WHERE u.lease_id = usage_records.lease_id AND u.seq <= usage_records.seq
      );
      ALTER TABLE leases ADD COLUMN allocation_json TEXT NOT NULL DEFAULT '{"cpuMillicores":"$big:0","gpuCount":"$big:0","egressBytesPerSecond":"$big:0"}';
      ALTER TABLE leases DROP COLUMN max_rate_per_second;
    `,
  },
  {
    id: 5,
    name: 'lease access: an audit of tenant shells (never their input), and the port tokens tenants mint (hashed)',
    up: `
      CREATE TABLE exec_sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        lease_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        remote_address TEXT,
        command_json TEXT NOT NULL,
        tty INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER,
        exit_code INTEGER,
        outcome TEXT
      );
      CREATE INDEX exec_sessions_by_lease ON exec_sessions (lease_id, started_at);
      CREATE TABLE access_tokens (
        token_id TEXT PRIMARY KEY,
        lease_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        port INTEGER,
        secret_hash TEXT NOT NULL,
        label TEXT,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE INDEX access_tokens_by_lease ON access_tokens (lease_id);
    `,
  },
  {
    id: 6,
    name: 'GPU readings per usage record: utilisation and memory of each GPU or MIG slice a lease holds, at the record\'s end',
    // Informational, beside the records and never in them: the v2 leaf (docs/settlement-v2.md)
    // bills allocated GPU-seconds, and a reading the tenant cannot check has no place in a Merkle leaf.
    up: `
      CREATE TABLE usage_gpu_readings (
        lease_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        uuid TEXT NOT NULL,
        parent_uuid TEXT,
        at INTEGER NOT NULL,
        utilization REAL,
        memory_used_bytes INTEGER,
        memory_total_bytes INTEGER,
        PRIMARY KEY (lease_id, seq, uuid)
      );
    `,
  },
];
