"""Webhook endpoints: where job outcome events are sent, signed per Standard Webhooks."""
