"""SQL behind the relay's fast ledger path on PostgreSQL (billing/fastledger.py).

A hold is one function call and a batch of settlements one statement: each one round
trip and atomic. They do what billing/holds.py does through the ORM (used on SQLite).
Lock order is wallet, then key, everywhere.
"""

from logs.records import FIELDS

# The request log's columns: the record's, then those the settlement fills in: the
# request id, the charge to the balance, the usage drawn from a plan, that plan, and
# the hold the charge was capped by.
DERIVED_COLUMNS = ("request_id", "cost", "plan_cost", "subscription_id", "hold")
LOG_COLUMNS = (*DERIVED_COLUMNS, *FIELDS)

# The start of the bucket of SPAN at P_NOW (billing/caps.bucket_start), and the first
# bucket counted by a cap (billing/caps.counted_since).
BUCKETS = """
CREATE OR REPLACE FUNCTION th_bucket_start(p_span text, p_at timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT CASE p_span
        WHEN 'm' THEN to_timestamp(floor(extract(epoch FROM p_at) / 600) * 600)
        WHEN 'h' THEN to_timestamp(floor(extract(epoch FROM p_at) / 3600) * 3600)
        ELSE date_trunc(CASE p_span WHEN 'd' THEN 'day' WHEN 'w' THEN 'week' ELSE 'month' END,
                        p_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
    END
$$;

-- The index of the first cap in P_CAPS that cannot take this request, or -1. A cap
-- counts the usage settled in its window plus the holds in flight plus this request:
-- P_AMOUNT for USD caps, 1 for request counts. Spend caps of keys and organizations
-- count money only: a request a plan pays for (P_PLAN) spends none.
CREATE OR REPLACE FUNCTION th_caps_refused(
    p_caps jsonb, p_wallet bigint, p_amount bigint, p_now timestamptz, p_plan boolean
) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    c jsonb;
    v_meter text; v_kind text; v_id bigint; v_unit text; v_span text;
    v_flight bigint; v_used bigint; v_need bigint; v_since timestamptz;
BEGIN
    FOR i IN 0 .. coalesce(jsonb_array_length(p_caps), 0) - 1 LOOP
        c := p_caps -> i;
        v_meter := c->>'meter'; v_kind := left(v_meter, 1);
        v_id := substr(v_meter, 2)::bigint; v_unit := c->>'unit'; v_span := c->>'span';
        IF v_unit = 'usd' AND v_kind <> 's' AND p_plan THEN
            CONTINUE;
        END IF;
        SELECT CASE WHEN v_unit = 'usd' THEN coalesce(sum(h.amount), 0) ELSE count(*) END
          INTO v_flight FROM billing_hold h
         WHERE CASE v_kind WHEN 's' THEN h.subscription_id = v_id
                           WHEN 'k' THEN h.api_key_id = v_id
                           ELSE h.wallet_id = p_wallet END
           AND (v_unit <> 'usd' OR v_kind = 's' OR h.subscription_id IS NULL);
        v_need := CASE WHEN v_unit = 'usd' THEN p_amount ELSE 1 END;
        v_used := 0;
        IF v_unit <> 'concurrent' THEN
            v_since := th_bucket_start(v_span, CASE WHEN v_span IN ('m', 'h')
                THEN p_now - make_interval(secs => (c->>'window')::double precision)
                ELSE p_now END);
            SELECT coalesce(sum(CASE WHEN v_unit = 'usd' THEN b.cost ELSE b.requests END), 0)
              INTO v_used FROM billing_usagebucket b
             WHERE b.meter = v_meter AND b.span = v_span AND b.start >= v_since;
        END IF;
        IF v_used + v_flight + v_need > (c->>'limit')::bigint THEN
            RETURN i;
        END IF;
    END LOOP;
    RETURN -1;
END $$;
"""

_HOLD_PLACE = """
-- Hold P_AMOUNT against the key's spend limit (a monthly limit starts afresh with the
-- month); false, changing nothing, when the limit cannot cover it.
CREATE OR REPLACE FUNCTION th_key_hold(p_key bigint, p_amount bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    UPDATE accounts_apikey SET
        period_spent = CASE WHEN spend_limit_period = 'month'
            AND (period_start IS NULL OR period_start < v_month)
            THEN 0 ELSE period_spent END,
        period_start = CASE WHEN spend_limit_period = 'month'
            AND (period_start IS NULL OR period_start < v_month)
            THEN v_month ELSE period_start END,
        held = held + p_amount
     WHERE id = p_key AND (spend_limit IS NULL OR spend_limit >= held + p_amount + (
        CASE WHEN spend_limit_period = 'month'
            AND (period_start IS NULL OR period_start < v_month)
            THEN 0 ELSE period_spent END));
    RETURN FOUND;
END $$;
CREATE OR REPLACE FUNCTION th_hold_place(
    p_ref text, p_wallet bigint, p_key bigint, p_amount bigint, p_ttl double precision,
    p_lease text, p_progress jsonb, p_now timestamptz, p_sub bigint, p_fallback boolean,
    p_plan_caps jsonb, p_caps jsonb, p_meters jsonb,
    OUT outcome text, OUT available bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_balance bigint; v_held bigint; v_leased bigint; v_fail integer; v_sub bigint;
BEGIN
    -- outcome: 'plan' or 'balance' (placed, funded by it); 'low' (balance too low),
    -- 'key' (key spend limit), 'window:<i>' (plan window i full, no fallback), 'cap:<i>'
    -- (cap i of P_CAPS). Nothing changes unless placed. AVAILABLE: the wallet's credit
    -- after the hold (leased credit included: it is the organization's to spend). The
    -- wallet row is locked first (then the key): it serialises every admission of the
    -- organization, so caps and windows are counted exactly. Leased credit is not free.
    IF p_sub IS NULL AND jsonb_array_length(p_caps) = 0 THEN
        -- No plan, no caps (most requests): one conditional update, as before plans.
        UPDATE billing_wallet SET held = held + p_amount
         WHERE id = p_wallet AND balance + credit_limit >= held + leased + p_amount
        RETURNING balance + credit_limit - held INTO available;
        IF NOT FOUND THEN
            outcome := 'low';
            SELECT w.balance + w.credit_limit - w.held INTO available
              FROM billing_wallet w WHERE w.id = p_wallet;
            RETURN;
        END IF;
        IF p_key IS NOT NULL AND NOT th_key_hold(p_key, p_amount) THEN
            -- Same transaction, wallet row still locked: take the hold back.
            UPDATE billing_wallet SET held = held - p_amount WHERE id = p_wallet;
            outcome := 'key'; available := available + p_amount;
            RETURN;
        END IF;
        INSERT INTO billing_hold (reference, wallet_id, api_key_id, amount, created_at,
                                  expires_at, lease, progress, subscription_id, meters)
        VALUES (p_ref, p_wallet, p_key, p_amount, now(),
                now() + make_interval(secs => p_ttl), p_lease, p_progress, NULL, p_meters);
        outcome := 'balance';
        RETURN;
    END IF;
    -- A plan or caps: lock the wallet first, then count.
    -- A credit line lowers the floor: the balance may go down to -credit_limit.
    -- Credit leased to serving processes (CREDIT_LEASE) is not free for this hold.
    SELECT w.balance + w.credit_limit, w.held, w.leased INTO v_balance, v_held, v_leased
      FROM billing_wallet w WHERE w.id = p_wallet FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'low'; available := 0; RETURN;
    END IF;
    available := v_balance - v_held;
    IF p_sub IS NOT NULL THEN
        v_fail := th_caps_refused(p_plan_caps, p_wallet, p_amount, p_now, true);
        IF v_fail < 0 THEN
            v_sub := p_sub;
        ELSIF NOT p_fallback THEN
            outcome := 'window:' || v_fail; RETURN;
        END IF;
    END IF;
    v_fail := th_caps_refused(p_caps, p_wallet, p_amount, p_now, v_sub IS NOT NULL);
    IF v_fail >= 0 THEN
        outcome := 'cap:' || v_fail; RETURN;
    END IF;
    IF v_sub IS NULL THEN
        IF v_balance < v_held + v_leased + p_amount THEN
            outcome := 'low'; RETURN;
        END IF;
        IF p_key IS NOT NULL AND NOT th_key_hold(p_key, p_amount) THEN
            outcome := 'key'; RETURN;
        END IF;
        UPDATE billing_wallet SET held = held + p_amount WHERE id = p_wallet;
        available := available - p_amount;
    END IF;
    INSERT INTO billing_hold (reference, wallet_id, api_key_id, amount, created_at,
                              expires_at, lease, progress, subscription_id, meters)
    VALUES (p_ref, p_wallet, p_key, p_amount, now(), now() + make_interval(secs => p_ttl),
            p_lease, p_progress, v_sub,
            -- the plan's meters only when the plan pays
            CASE WHEN v_sub IS NOT NULL THEN p_meters ELSE (
                SELECT coalesce(jsonb_agg(m), '[]'::jsonb)
                  FROM jsonb_array_elements_text(p_meters) AS m WHERE left(m, 1) <> 's') END);
    outcome := CASE WHEN v_sub IS NULL THEN 'balance' ELSE 'plan' END;
END $$;
"""
HOLD_PLACE = BUCKETS + _HOLD_PLACE

# Holds queued while one round trip was in flight, placed by the next, one after another
# in one transaction: each exactly as th_hold_place would alone, later ones seeing the
# earlier ones (the same wallet's credit, caps and windows count them). Items come
# sorted by wallet, then key, the lock order of every ledger statement, so two batches
# cannot deadlock. ORD is the caller's index of each item.
HOLD_PLACE_MANY = """
CREATE OR REPLACE FUNCTION th_hold_place_many(p_items jsonb, p_now timestamptz)
RETURNS TABLE (ord integer, outcome text, available bigint) LANGUAGE plpgsql AS $$
DECLARE
    it jsonb; r record;
BEGIN
    FOR it IN SELECT e.value FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e
               ORDER BY e.ordinality LOOP
        SELECT * INTO r FROM th_hold_place(
            it->>'ref', (it->>'wallet')::bigint, (it->>'key')::bigint,
            (it->>'amount')::bigint, (it->>'ttl')::double precision, it->>'lease',
            it->'progress', p_now,
            (it->>'sub')::bigint, (it->>'fallback')::boolean, it->'plan_caps', it->'caps',
            it->'meters');
        ord := (it->>'ord')::integer; outcome := r.outcome; available := r.available;
        RETURN NEXT;
    END LOOP;
END $$;
"""
# Credit leases (relay/pipeline/credit.py). Lock order as everywhere: the wallet, then
# the lease row, then the key. Leased credit is reserved, not spent: no ledger row.
CREDIT_LEASE = """
-- Reserve for lease P_LEASE up to P_MOST of the wallet's free credit, and no more than a
-- P_SHARE-th of it: what was granted, or 0 (nothing changed) when that is under P_LEAST.
CREATE OR REPLACE FUNCTION th_lease_grant(
    p_lease text, p_wallet bigint, p_most bigint, p_least bigint, p_share integer
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint;
BEGIN
    SELECT least(p_most, (w.balance + w.credit_limit - w.held - w.leased) / p_share)
      INTO v_amount FROM billing_wallet w WHERE w.id = p_wallet FOR UPDATE;
    IF v_amount IS NULL OR v_amount < greatest(p_least, 1) THEN
        RETURN 0;
    END IF;
    UPDATE billing_wallet SET leased = leased + v_amount WHERE id = p_wallet;
    INSERT INTO billing_creditlease (lease_id, wallet_id, amount, updated_at)
    VALUES (p_lease, p_wallet, v_amount, now())
    ON CONFLICT (lease_id, wallet_id) DO UPDATE
       SET amount = billing_creditlease.amount + EXCLUDED.amount, updated_at = now();
    RETURN v_amount;
END $$;

-- Give back what lease P_LEASE holds on the wallet beyond P_KEEP (what its process
-- admitted and has not written holds for yet); returns what went back.
CREATE OR REPLACE FUNCTION th_lease_return(p_lease text, p_wallet bigint, p_keep bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_amount bigint; v_back bigint;
BEGIN
    PERFORM 1 FROM billing_wallet WHERE id = p_wallet FOR UPDATE;
    SELECT amount INTO v_amount FROM billing_creditlease
     WHERE lease_id = p_lease AND wallet_id = p_wallet FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    v_back := greatest(v_amount - greatest(p_keep, 0), 0);
    IF v_amount - v_back = 0 THEN
        DELETE FROM billing_creditlease WHERE lease_id = p_lease AND wallet_id = p_wallet;
    ELSIF v_back > 0 THEN
        UPDATE billing_creditlease SET amount = amount - v_back, updated_at = now()
         WHERE lease_id = p_lease AND wallet_id = p_wallet;
    END IF;
    IF v_back > 0 THEN
        UPDATE billing_wallet SET leased = leased - v_back WHERE id = p_wallet;
    END IF;
    RETURN v_back;
END $$;

-- The hold of a request its process admitted against lease P_LEASE, written behind it:
-- drawn from the lease, which admitted it. With P_REFILL (the process still uses the
-- lease) the wallet's free credit then tops the lease up again, when there is enough:
-- outcome 'free', the lease as it was; else 'drawn', the lease smaller. When the lease
-- cannot cover it (the sweep gave it back while its process stalled): 'unleased', funded
-- by the free credit, or 'low' when that cannot either, and nothing changed.
-- AVAILABLE: the wallet's credit after it.
-- A key's spend limit is not checked: keys with one are never admitted this way.
CREATE OR REPLACE FUNCTION th_hold_carve(
    p_ref text, p_wallet bigint, p_key bigint, p_amount bigint, p_ttl double precision,
    p_lease text, p_progress jsonb, p_refill boolean, OUT outcome text, OUT available bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_free bigint;
BEGIN
    SELECT w.balance + w.credit_limit - w.held - w.leased, w.balance + w.credit_limit - w.held
      INTO v_free, available
      FROM billing_wallet w WHERE w.id = p_wallet FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'low'; available := 0; RETURN;
    END IF;
    UPDATE billing_creditlease SET amount = amount - p_amount, updated_at = now()
     WHERE lease_id = p_lease AND wallet_id = p_wallet AND amount >= p_amount;
    IF FOUND THEN
        IF p_refill AND v_free >= p_amount THEN
            UPDATE billing_creditlease SET amount = amount + p_amount
             WHERE lease_id = p_lease AND wallet_id = p_wallet;
            UPDATE billing_wallet SET held = held + p_amount WHERE id = p_wallet;
            outcome := 'free';
        ELSE
            UPDATE billing_wallet SET held = held + p_amount, leased = leased - p_amount
             WHERE id = p_wallet;
            outcome := 'drawn';
        END IF;
    ELSIF v_free >= p_amount THEN
        UPDATE billing_wallet SET held = held + p_amount WHERE id = p_wallet;
        outcome := 'unleased';
    ELSE
        outcome := 'low'; RETURN;
    END IF;
    available := available - p_amount;
    IF p_key IS NOT NULL THEN
        UPDATE accounts_apikey SET held = held + p_amount WHERE id = p_key;
    END IF;
    INSERT INTO billing_hold (reference, wallet_id, api_key_id, amount, created_at,
                              expires_at, lease, progress, subscription_id, meters)
    VALUES (p_ref, p_wallet, p_key, p_amount, now(), now() + make_interval(secs => p_ttl),
            p_lease, p_progress, NULL, '[]'::jsonb);
END $$;

-- Holds written behind together, like th_hold_place_many: sorted by wallet, then key.
CREATE OR REPLACE FUNCTION th_hold_carve_many(p_items jsonb)
RETURNS TABLE (ord integer, outcome text, available bigint) LANGUAGE plpgsql AS $$
DECLARE
    it jsonb; r record;
BEGIN
    FOR it IN SELECT e.value FROM jsonb_array_elements(p_items) WITH ORDINALITY AS e
               ORDER BY e.ordinality LOOP
        SELECT * INTO r FROM th_hold_carve(
            it->>'ref', (it->>'wallet')::bigint, (it->>'key')::bigint,
            (it->>'amount')::bigint, (it->>'ttl')::double precision, it->>'lease',
            it->'progress', (it->>'refill')::boolean);
        ord := (it->>'ord')::integer; outcome := r.outcome; available := r.available;
        RETURN NEXT;
    END LOOP;
END $$;
"""
DROP_CREDIT_LEASE = """
DROP FUNCTION IF EXISTS th_hold_carve_many(jsonb);
DROP FUNCTION IF EXISTS th_hold_carve(
    text, bigint, bigint, bigint, double precision, text, jsonb, boolean);
DROP FUNCTION IF EXISTS th_lease_return(text, bigint, bigint);
DROP FUNCTION IF EXISTS th_lease_grant(text, bigint, bigint, bigint, integer);
"""
# Whether REF has a log row on any day. A function (PL/pgSQL: never inlined) so that
# SETTLE_BATCH's plan does not carry a scan of every daily partition; it runs only for
# the rare item that comes with no hold.
REQUEST_LOGGED = """
CREATE OR REPLACE FUNCTION th_request_logged(p_ref text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM logs_requestlog WHERE request_id = p_ref);
END $$;
"""
DROP_BATCH_FUNCTIONS = """
DROP FUNCTION IF EXISTS th_hold_place_many(jsonb, timestamptz);
DROP FUNCTION IF EXISTS th_request_logged(text);
"""

_COLS = ", ".join(LOG_COLUMNS)
# The log row's cost is what was charged: the reported cost capped by the hold.
_DERIVED = {
    "request_id": "r.request_id",
    "cost": "c.charge",
    "plan_cost": "c.plan_charge",
    "subscription_id": "c.subscription_id",
    "hold": "c.hold_amount",
}
_SELECT_COLS = ", ".join(_DERIVED.get(col, f"r.{col}") for col in LOG_COLUMNS)

# Settles a whole batch in one statement: each wallet and key row is updated once per
# batch (not once per request), so its row lock is held for microseconds. Parameters: a
# JSON array of {reference, wallet_id, api_key_id, cost, ord} and a JSON array of log rows.
# A charge never exceeds its hold: cost beyond it goes to billing_uncollectedusage.
# Wallets are locked in id order before any key (like th_hold_place), so batches from
# several processes cannot deadlock. The log row is the idempotence guard: an item is
# charged only when its log row goes in. Its hold, if there is one, is released
# whatever happens to the row (a hold whose request was logged already is stale: it is
# let go, not charged). An item with no hold was settled before (or never held) and is
# logged only if th_request_logged finds no row for it on any day, since another path
# (the sweep, from an older snapshot) may have logged it at another time
# (docs/architecture.md); the unique key (request_id, created_at) guards the rest.
# The statement names the partitioned log only as the INSERT's target: a prepared
# (generic) plan that read it would lock and open every daily partition and its
# indexes on every execution (a 16% loss at 10 million rows over 31 days), and an
# anti-join on it hashed a whole day's partition while its statistics lagged.
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
    RETURNING h.reference, h.amount, h.api_key_id, h.subscription_id, h.meters
), funded AS (
    SELECT i.*, least(i.cost, coalesce(r.amount, 0)) AS capped_cost,
           coalesce(r.amount, 0) AS hold_amount,
           r.subscription_id, coalesce(r.meters, '[]'::jsonb) AS meters,
           -- a plan's hold took nothing from the wallet or the key
           CASE WHEN r.subscription_id IS NULL THEN coalesce(r.amount, 0) ELSE 0 END AS held,
           r.api_key_id IS NOT NULL AND r.subscription_id IS NULL AS key_held,
           r.reference IS NOT NULL AS released
    FROM items i LEFT JOIN released r ON r.reference = i.reference
), capped AS (
    SELECT f.*,
           CASE WHEN f.subscription_id IS NULL THEN f.capped_cost ELSE 0 END AS charge,
           CASE WHEN f.subscription_id IS NULL THEN 0 ELSE f.capped_cost END AS plan_charge
    FROM funded f
), logged AS (
    INSERT INTO logs_requestlog ({_COLS})
    SELECT {_SELECT_COLS} FROM rows r JOIN capped c ON c.reference = r.request_id
     WHERE c.released OR NOT th_request_logged(r.request_id)
    ON CONFLICT (request_id, created_at) DO NOTHING
    RETURNING request_id
), outcome AS (
    SELECT c.*, l.request_id IS NOT NULL AS is_settled
      FROM capped c LEFT JOIN logged l ON l.request_id = c.reference
), settled AS (
    SELECT * FROM outcome WHERE is_settled
), uncollected AS (
    INSERT INTO billing_uncollectedusage
        (reference, wallet_id, api_key_id, channel_id, model, cost, amount, created_at)
    SELECT s.reference, s.wallet_id, s.api_key_id, r.channel_id, r.model, s.cost,
           s.cost - s.capped_cost, now()
      FROM settled s JOIN rows r ON r.request_id = s.reference
     WHERE s.cost > s.capped_cost
    ON CONFLICT (reference) DO NOTHING
    RETURNING 1
), locked AS (
    SELECT w.id FROM billing_wallet w
    WHERE w.id IN (SELECT wallet_id FROM outcome WHERE is_settled OR released)
    ORDER BY w.id FOR UPDATE
), wallets AS (
    UPDATE billing_wallet w
       SET balance = w.balance - p.charge, held = w.held - p.held, updated_at = now()
      FROM (SELECT wallet_id, sum(CASE WHEN is_settled THEN charge ELSE 0 END) AS charge,
                   sum(held) AS held
              FROM outcome WHERE is_settled OR released GROUP BY wallet_id) p
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
      FROM (SELECT api_key_id, sum(CASE WHEN is_settled THEN charge ELSE 0 END) AS charge,
                   sum(CASE WHEN key_held THEN held ELSE 0 END) AS held
              FROM outcome WHERE api_key_id IS NOT NULL AND (is_settled OR released)
             GROUP BY api_key_id) p
     WHERE k.id = p.api_key_id
       -- after the wallets: wallet-then-key lock order
       AND (SELECT count(*) FROM wallets) >= 0
    RETURNING 1
), buckets AS (
    -- Usage for the plan windows and caps the hold named ("s12:m", "k5:d"...): a plan
    -- meter counts what the plan paid, the others what the balance paid; a request
    -- counts unless it failed without cost. Rows in key order, after the wallets are
    -- locked: concurrent batches cannot deadlock on them.
    INSERT INTO billing_usagebucket AS b (meter, span, start, cost, requests)
    SELECT split_part(m.name, ':', 1), split_part(m.name, ':', 2),
           th_bucket_start(split_part(m.name, ':', 2), %(now)s::timestamptz),
           sum(CASE WHEN left(m.name, 1) = 's' THEN s.plan_charge ELSE s.charge END),
           sum(CASE WHEN r.status_code < 400 OR s.capped_cost > 0 THEN 1 ELSE 0 END)
      FROM settled s JOIN rows r ON r.request_id = s.reference
           CROSS JOIN LATERAL jsonb_array_elements_text(s.meters) AS m(name)
     WHERE (SELECT count(*) FROM locked) >= 0
     GROUP BY 1, 2, 3
     ORDER BY 1, 2, 3
    ON CONFLICT (meter, span, start) DO UPDATE
       SET cost = b.cost + EXCLUDED.cost, requests = b.requests + EXCLUDED.requests
    RETURNING 1
)
SELECT reference FROM settled
"""  # noqa: S608

# The function before holds had a lease (migration billing/0007 replaces it).
DROP_V1 = """
DROP FUNCTION IF EXISTS th_hold_place(text, bigint, bigint, bigint, double precision);
"""

# The function before plans and caps (migration billing/0008 replaces it).
DROP_V2 = """
DROP FUNCTION IF EXISTS th_hold_place(
    text, bigint, bigint, bigint, double precision, text, jsonb);
"""

DROP = (
    DROP_BATCH_FUNCTIONS
    + DROP_V1
    + DROP_V2
    + """
DROP FUNCTION IF EXISTS th_hold_place(
    text, bigint, bigint, bigint, double precision, text, jsonb, timestamptz, bigint,
    boolean, jsonb, jsonb, jsonb);
DROP FUNCTION IF EXISTS th_caps_refused(jsonb, bigint, bigint, timestamptz, boolean);
DROP FUNCTION IF EXISTS th_key_hold(bigint, bigint);
DROP FUNCTION IF EXISTS th_bucket_start(text, timestamptz);
"""
)
