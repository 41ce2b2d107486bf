package wire

// QueryCashiers is the query parameter of PathChanges by which a till names
// the version of the cashier list it holds ("" none). HQ then answers the
// store's whole list with Changes.Cashiers when its version differs. A
// client that sends no such parameter gets no cashiers.
const QueryCashiers = "cashiers"
