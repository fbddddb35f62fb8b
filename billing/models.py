# The ledger, payments, fees, plans, rates and the daily run arrive with "2. Money core".
