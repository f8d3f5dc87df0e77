"""The /api/v1 routes of billing: top-ups, redemptions, the plan, statements, and the
operator's margins and finance export (staff only)."""

from django.urls import path

from billing import finance_api, statements_api
from billing.api import RedemptionView, SubscriptionView, TopUpListView
from billing.margins_api import MarginsView

urlpatterns = [
    path("topups", TopUpListView.as_view(), name="api-topups"),
    path("redemptions", RedemptionView.as_view(), name="api-redemptions"),
    path("subscription", SubscriptionView.as_view(), name="api-subscription"),
    # The operator's margins (billing/margins.py).
    path("margins", MarginsView.as_view(), name="api-margins"),
    # The operator's finance export (docs/finance-export.md).
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
    # The organization's monthly statements (billing/statements.py).
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
