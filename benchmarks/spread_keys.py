"""Bench-only: many customers. Creates ORGS organizations with KEYS keys between them
through the project's own services (real hashed keys, credited wallets), and the wrk Lua
that rotates the Authorization header over them."""

from __future__ import annotations

# Run by `manage.py shell -c`: one process, services only (key_create hashes the secret
# exactly as the relay expects; wallet_credit writes the ledger the books check sums).
CREATE = """
import uuid
from accounts.models import User
from accounts.services import key_create, organization_create
from billing.models import LedgerEntry
from billing.services import wallet_credit

owner = User.objects.get(email={email!r})
for o in range({orgs}):
    org = organization_create(name=f"bench org {{o}}", owner=owner)
    wallet_credit(
        organization=org, amount={credit}, kind=LedgerEntry.Kind.ADJUST,
        source_type="bench", source_id=uuid.uuid4().hex, note="bench credit",
    )
    for k in range({per_org}):
        _, secret = key_create(organization=org, created_by=owner, name=f"bench {{o}}.{{k}}")
        print("BENCHKEY", secret)
"""


def create_script(*, email: str, orgs: int, keys: int, credit_micros: int) -> str:
    return CREATE.format(email=email, orgs=orgs, per_org=keys // orgs, credit=credit_micros)


def secrets_from(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("BENCHKEY ")]


# Appended to the wrk script: each request carries the next key of the file, round robin.
ROTATE_LUA = """
local keys = {}
for line in io.lines("$keys_file") do
  keys[#keys + 1] = line
end
local next_key = math.random(#keys)
function request()
  next_key = next_key % #keys + 1
  wrk.headers["Authorization"] = "Bearer " .. keys[next_key]
  return wrk.format()
end
"""
