"""SQL behind the relay's fast ledger path on PostgreSQL (billing/fastledger.py).

A hold is one function call and a batch of settlements one statement: each one round
trip and atomic. They do what billing/holds.py does through the ORM (used on SQLite).
Lock order is wallet, then key, everywhere.
"""

from logs.records import FIELDS

# The request log's columns: the record's, the request id and the charge.
LOG_COLUMNS = ("request_id", "cost", *FIELDS)

HOLD_PLACE = """
CREATE OR REPLACE FUNCTION th_hold_place(
    p_ref text, p_wallet bigint, p_key bigint, p_amount bigint, p_ttl double precision,
    p_lease text, p_progress jsonb
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
    INSERT INTO billing_hold
        (reference, wallet_id, api_key_id, amount, created_at, expires_at, lease, progress)
    VALUES (p_ref, p_wallet, p_key, p_amount, now(), now() + make_interval(secs => p_ttl),
            p_lease, p_progress);
    RETURN 0;
END $$;
"""

_COLS = ", ".join(LOG_COLUMNS)
# The log row's cost is what was charged: the reported cost capped by the hold.
_SELECT_COLS = ", ".join("c.charge" if col == "cost" else f"r.{col}" for col in LOG_COLUMNS)

# Settles a whole batch in one statement: each wallet and key row is updated once per
# batch (not once per request), so its row lock is held for microseconds. Parameters: a
# JSON array of {reference, wallet_id, api_key_id, cost, ord} and a JSON array of log rows.
# A charge never exceeds its hold: cost beyond it goes to billing_uncollectedusage.
# Wallets are locked in id order before any key (like th_hold_place), so batches from
# several processes cannot deadlock. The log row (unique request_id) is the idempotence
# guard: items already settled drop out at the log insert and change nothing (their hold
# was deleted when they settled, so there is none left to release).
# It interpolates only the constant column names above.
SETTLE_BATCH = f"""
WITH items AS (
    SELECT DISTINCT ON (reference) * FROM jsonb_to_recordset(%(items)s::jsonb)
        AS x(reference text, wallet_id bigint, api_key_id bigint, cost bigint, ord integer)
    ORDER BY reference, ord
), rows AS (
    SELECT * FROM jsonb_populate_recordset(NULL::logs_requestlog, %(logs)s::jsonb)
), released AS (
    DELETE FROM billing_hold h USING items i
     WHERE h.reference = i.reference
       AND NOT EXISTS (SELECT 1 FROM logs_requestlog l WHERE l.request_id = i.reference)
    RETURNING h.reference, h.amount, h.api_key_id
), capped AS (
    SELECT i.*, coalesce(r.amount, 0) AS held, r.api_key_id IS NOT NULL AS key_held,
           least(i.cost, coalesce(r.amount, 0)) AS charge
    FROM items i LEFT JOIN released r ON r.reference = i.reference
), logged AS (
    INSERT INTO logs_requestlog ({_COLS})
    SELECT {_SELECT_COLS} FROM rows r JOIN capped c ON c.reference = r.request_id
    ON CONFLICT (request_id) DO NOTHING
    RETURNING request_id
), settled AS (
    SELECT c.* FROM capped c JOIN logged l ON l.request_id = c.reference
), uncollected AS (
    INSERT INTO billing_uncollectedusage
        (reference, wallet_id, api_key_id, channel_id, model, cost, amount, created_at)
    SELECT s.reference, s.wallet_id, s.api_key_id, r.channel_id, r.model, s.cost,
           s.cost - s.charge, now()
      FROM settled s JOIN rows r ON r.request_id = s.reference
     WHERE s.cost > s.charge
    ON CONFLICT (reference) DO NOTHING
    RETURNING 1
), locked AS (
    SELECT w.id FROM billing_wallet w
    WHERE w.id IN (SELECT wallet_id FROM settled) ORDER BY w.id FOR UPDATE
), wallets AS (
    UPDATE billing_wallet w
       SET balance = w.balance - p.charge, held = w.held - p.held, updated_at = now()
      FROM (SELECT wallet_id, sum(charge) AS charge, sum(held) AS held
              FROM settled GROUP BY wallet_id) p
     WHERE w.id = p.wallet_id AND w.id IN (SELECT id FROM locked)
       AND (p.charge <> 0 OR p.held <> 0)
    RETURNING w.id, w.balance + p.charge AS opening
), ledger AS (
    INSERT INTO billing_ledgerentry
        (wallet_id, kind, amount, balance_after, source_type, source_id, note, created_at)
    SELECT s.wallet_id, 'charge', -s.charge,
           w.opening - sum(s.charge) OVER (PARTITION BY s.wallet_id ORDER BY s.ord),
           'request', s.reference, '', now()
      FROM settled s JOIN wallets w ON w.id = s.wallet_id
     WHERE s.charge <> 0
    RETURNING 1
), keys AS (
    UPDATE accounts_apikey k
       SET spent = k.spent + p.charge, period_spent = k.period_spent + p.charge,
           held = k.held - p.held, last_used_at = now()
      FROM (SELECT api_key_id, sum(charge) AS charge,
                   sum(CASE WHEN key_held THEN held ELSE 0 END) AS held
              FROM settled WHERE api_key_id IS NOT NULL GROUP BY api_key_id) p
     WHERE k.id = p.api_key_id
       -- after the wallets: wallet-then-key lock order
       AND (SELECT count(*) FROM wallets) >= 0
    RETURNING 1
)
SELECT reference FROM settled
"""  # noqa: S608

# The function before holds had a lease (migration billing/0007 replaces it).
DROP_V1 = """
DROP FUNCTION IF EXISTS th_hold_place(text, bigint, bigint, bigint, double precision);
"""

DROP = (
    DROP_V1
    + """
DROP FUNCTION IF EXISTS th_hold_place(
    text, bigint, bigint, bigint, double precision, text, jsonb);
"""
)
