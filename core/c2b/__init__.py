"""C2B: customers paying the business's till or paybill straight, with no STK prompt. Registering the
confirmation and validation URLs per channel, answering M-Pesa's validation, and turning each
confirmation into one payment (source `c2b`). docs/c2b.md is the merchant's and developer's guide."""
