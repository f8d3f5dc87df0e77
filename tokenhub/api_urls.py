"""The /api/v1 management API, assembled from the apps' API modules."""

from django.urls import path

from accounts.api import (
    ApiRootView,
    InvitationDetailView,
    KeyDetailView,
    KeyListView,
    KeyRotateView,
    MemberDetailView,
    MemberListView,
    OrganizationDetailView,
    OrganizationListView,
)
from billing.api import RedemptionView, SubscriptionView, TopUpListView

urlpatterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    path("keys", KeyListView.as_view(), name="api-keys"),
    path("keys/<int:key_id>", KeyDetailView.as_view(), name="api-key"),
    path("keys/<int:key_id>/rotate", KeyRotateView.as_view(), name="api-key-rotate"),
    path("organizations", OrganizationListView.as_view(), name="api-organizations"),
    path("organizations/<int:org_id>", OrganizationDetailView.as_view(), name="api-organization"),
    path("organizations/<int:org_id>/members", MemberListView.as_view(), name="api-org-members"),
    path(
        "organizations/<int:org_id>/members/<int:user_id>",
        MemberDetailView.as_view(),
        name="api-org-member",
    ),
    path(
        "organizations/<int:org_id>/invitations/<int:invitation_id>",
        InvitationDetailView.as_view(),
        name="api-org-invitation",
    ),
    # billing
    path("topups", TopUpListView.as_view(), name="api-topups"),
    path("redemptions", RedemptionView.as_view(), name="api-redemptions"),
    path("subscription", SubscriptionView.as_view(), name="api-subscription"),
]

# Accounts: privacy rights.
from accounts.privacy_api import MyExportView  # noqa: E402

urlpatterns += [path("me/export", MyExportView.as_view(), name="api-me-export")]

# Billing: the operator's margins (staff only; billing/margins.py).
from billing.margins_api import MarginsView  # noqa: E402

urlpatterns += [path("margins", MarginsView.as_view(), name="api-margins")]

# Billing: the operator's finance export (staff only; docs/finance-export.md).
from billing import finance_api  # noqa: E402

urlpatterns += [
    path("finance/ledger", finance_api.LedgerExportView.as_view(), name="api-finance-ledger"),
    path("finance/topups", finance_api.TopUpExportView.as_view(), name="api-finance-topups"),
    path("finance/refunds", finance_api.RefundExportView.as_view(), name="api-finance-refunds"),
    path(
        "finance/statements",
        finance_api.StatementExportView.as_view(),
        name="api-finance-statements",
    ),
    path(
        "finance/credit-notes",
        finance_api.CreditNoteExportView.as_view(),
        name="api-finance-credit-notes",
    ),
    path(
        "finance/plan-payments",
        finance_api.PlanPaymentExportView.as_view(),
        name="api-finance-plan-payments",
    ),
]

# Billing: the organization's monthly statements (billing/statements.py).
from billing import statements_api  # noqa: E402

urlpatterns += [
    path("statements", statements_api.StatementListView.as_view(), name="api-statements"),
    path(
        "statements/<str:month>", statements_api.StatementDetailView.as_view(), name="api-statement"
    ),
    path(
        "statements/<str:month>/pdf",
        statements_api.StatementPdfView.as_view(),
        name="api-statement-pdf",
    ),
]
