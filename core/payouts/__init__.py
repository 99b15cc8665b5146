"""Money out: B2C payouts (one each, core.payouts.use_cases) and, built on them, bulk batches."""
