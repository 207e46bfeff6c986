"""Money, tariffs, billing cycles, rating and invoices."""
