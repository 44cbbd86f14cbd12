"""The directory the rules read: customers, contracts, codes, keys and tickets, in SQLite."""
