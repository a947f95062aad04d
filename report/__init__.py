"""Delivery report: modelled lead time, rollback and replacement times and monthly cost from cdk.out."""
