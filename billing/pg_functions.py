"""PostgreSQL functions behind the relay's fast ledger path (billing/fastledger.py).

Each runs as one statement, so a hold or a settlement is one round trip and atomic.
They implement exactly what billing/holds.py does through the ORM (used on SQLite),
and the same tests run against both. Lock order is wallet, then key, everywhere.
A change to RequestLog's columns needs a migration that re-creates th_settle.
"""

LOG_COLUMNS = (
    "created_at",
    "request_id",
    "client_request_id",
    "organization_id",
    "api_key_id",
    "channel_id",
    "endpoint",
    "model",
    "upstream_model",
    "stream",
    "status_code",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "usage_estimated",
    "cost",
    "latency_ms",
    "ttfb_ms",
    "attempts",
    "client_ip",
    "user_agent",
)

HOLD_PLACE = """
CREATE OR REPLACE FUNCTION th_hold_place(
    p_ref text, p_wallet bigint, p_key bigint, p_amount bigint, p_ttl double precision
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    -- 0 placed, 1 balance too low, 2 key spend limit reached. Nothing changes unless 0.
    UPDATE billing_wallet SET held = held + p_amount
     WHERE id = p_wallet AND balance >= held + p_amount;
    IF NOT FOUND THEN
        RETURN 1;
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE accounts_apikey SET
            period_spent = CASE WHEN spend_limit_period = 'month'
                AND (period_start IS NULL OR period_start < v_month) THEN 0 ELSE period_spent END,
            period_start = CASE WHEN spend_limit_period = 'month'
                AND (period_start IS NULL OR period_start < v_month)
                THEN v_month ELSE period_start END,
            held = held + p_amount
         WHERE id = p_key AND (spend_limit IS NULL OR spend_limit >= held + p_amount + (
            CASE WHEN spend_limit_period = 'month'
                AND (period_start IS NULL OR period_start < v_month) THEN 0 ELSE period_spent END));
        IF NOT FOUND THEN
            -- Same transaction, wallet row still locked: take the hold back.
            UPDATE billing_wallet SET held = held - p_amount WHERE id = p_wallet;
            RETURN 2;
        END IF;
    END IF;
    INSERT INTO billing_hold (reference, wallet_id, api_key_id, amount, created_at, expires_at)
    VALUES (p_ref, p_wallet, p_key, p_amount, now(), now() + make_interval(secs => p_ttl));
    RETURN 0;
END $$;
"""

_COLS = ", ".join(LOG_COLUMNS)
_SELECT_COLS = ", ".join(f"r.{c}" for c in LOG_COLUMNS)

# Interpolates only the constant column names above.
SETTLE = f"""
CREATE OR REPLACE FUNCTION th_settle(
    p_ref text, p_wallet bigint, p_key bigint, p_cost bigint, p_log jsonb
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_logged bigint;
    v_held bigint := 0;
    v_hold_key bigint;
    v_balance bigint;
BEGIN
    -- The log row is the idempotence guard: a second settlement of p_ref waits on the
    -- unique index for the first to commit, then changes nothing.
    INSERT INTO logs_requestlog ({_COLS})
    SELECT {_SELECT_COLS} FROM jsonb_populate_record(NULL::logs_requestlog, p_log) r
    ON CONFLICT (request_id) DO NOTHING
    RETURNING id INTO v_logged;
    IF v_logged IS NULL THEN
        RETURN false;
    END IF;
    DELETE FROM billing_hold WHERE reference = p_ref RETURNING amount, api_key_id
      INTO v_held, v_hold_key;
    v_held := coalesce(v_held, 0);
    IF p_cost <> 0 OR v_held <> 0 THEN
        UPDATE billing_wallet SET balance = balance - p_cost, held = held - v_held,
            updated_at = now()
         WHERE id = p_wallet RETURNING balance INTO v_balance;
        IF p_cost <> 0 THEN
            INSERT INTO billing_ledgerentry
                (wallet_id, kind, amount, balance_after, source_type, source_id, note, created_at)
            VALUES (p_wallet, 'charge', -p_cost, v_balance, 'request', p_ref, '', now());
        END IF;
    END IF;
    IF p_key IS NOT NULL THEN
        UPDATE accounts_apikey SET spent = spent + p_cost, period_spent = period_spent + p_cost,
            held = held - CASE WHEN v_hold_key IS NULL THEN 0 ELSE v_held END,
            last_used_at = now()
         WHERE id = p_key;
    END IF;
    RETURN true;
END $$;
"""  # noqa: S608

DROP = """
DROP FUNCTION IF EXISTS th_hold_place(text, bigint, bigint, bigint, double precision);
DROP FUNCTION IF EXISTS th_settle(text, bigint, bigint, bigint, jsonb);
"""
