-- "My calls" filtered by number or by outcome (issue 19, decision 0038): each filter gets an index
-- that starts with the customer and ends with the keyset (started_at, call_id), so a page of a
-- number or an outcome reads its 51 index entries however rare they are among the customer's calls.
-- Without them, a number of a customer with 1,500 numbers, or an outcome that never happened, meant
-- walking every call of the customer in the filter's days (seconds for the biggest customers).
-- Built on each month's partition (decision 0033); on a large cdrs this takes minutes, once.

CREATE INDEX cdrs_customer_did_started ON cdrs (customer_id, did, started_at, call_id);
CREATE INDEX cdrs_customer_outcome_started ON cdrs (customer_id, disposition, started_at, call_id);
