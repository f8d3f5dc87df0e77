"""Billing pages and provider callbacks, included at the site root by tokenhub/urls.py.

`/dashboard/billing/subscription` and `/dashboard/billing/usage` belong to the relay
(see tokenhub/asgi.py) and are deliberately not defined here.
"""

from django.urls import path

from billing import credit_note_views, invoice_views, statement_views, views, webhooks

urlpatterns = [
    path("billing/webhooks/stripe/", webhooks.stripe_webhook, name="billing-webhook-stripe"),
    path("billing/webhooks/epay/", webhooks.epay_notify, name="billing-webhook-epay"),
    path("billing/return/", webhooks.payment_return, name="billing-return"),
    # Demo payments (billing/providers/demo.py): on only with PAYMENTS_DEMO.
    path("billing/demo/<str:ref>/", views.demo_checkout, name="billing-demo-checkout"),
    path("billing/demo/<str:ref>/event", views.demo_event, name="billing-demo-event"),
    path(
        "billing/demo/plan/<str:ref>/",
        views.demo_plan_checkout,
        name="billing-demo-plan-checkout",
    ),
    path(
        "billing/demo/plan/<str:ref>/event", views.demo_plan_event, name="billing-demo-plan-event"
    ),
    path("dashboard/billing/", views.billing_page, name="billing"),
    path("dashboard/billing/topup/", views.topup_start, name="billing-topup"),
    path("dashboard/billing/plan/subscribe/", views.plan_subscribe, name="billing-plan-subscribe"),
    path("dashboard/billing/plan/cancel/", views.plan_cancel, name="billing-plan-cancel"),
    path("dashboard/billing/plan/resume/", views.plan_resume, name="billing-plan-resume"),
    path("dashboard/billing/plan/change/", views.plan_change, name="billing-plan-change"),
    path("dashboard/billing/redeem/", views.redeem, name="billing-redeem"),
    path("dashboard/billing/alert/", views.alert_set, name="billing-alert"),
    path("dashboard/billing/receipts/<int:pk>/", views.receipt, name="billing-receipt"),
    path(
        "dashboard/billing/credit-notes/<int:number>/",
        credit_note_views.credit_note_page,
        name="billing-credit-note",
    ),
    path(
        "dashboard/billing/credit-notes/<int:number>/pdf",
        credit_note_views.credit_note_pdf,
        name="billing-credit-note-pdf",
    ),
    # Invoices of credit lines (billing/invoices.py).
    path(
        "dashboard/billing/invoices/<int:number>/",
        invoice_views.invoice_page,
        name="billing-invoice",
    ),
    path(
        "dashboard/billing/invoices/<int:number>/pdf",
        invoice_views.invoice_pdf_download,
        name="billing-invoice-pdf",
    ),
    path(
        "dashboard/billing/invoices/<int:number>/pay",
        invoice_views.invoice_pay,
        name="billing-invoice-pay",
    ),
    # Monthly statements (billing/statements.py).
    path(
        "dashboard/billing/statements/<str:month>/",
        statement_views.statement_page,
        name="billing-statement",
    ),
    path(
        "dashboard/billing/statements/<str:month>/pdf",
        statement_views.statement_pdf_download,
        name="billing-statement-pdf",
    ),
]
