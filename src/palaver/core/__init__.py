"""Sans-I/O domain: records, errors, rules and arithmetic. No asyncio, SQL or JSON here."""
