"""The queue policy's figures: the service level's limit and when a customer is flagged (pure, no I/O).

Apart from the monthly report's SQL (rating/storage/queue_report.py) so that
`fairline queue report --help` can state them without loading the database driver.
"""

from __future__ import annotations

from decimal import Decimal

SERVICE_LEVEL_SECONDS = 60  # the policy's cap: a visit answered within it counts for the service level
# A customer is flagged when callers hit the cap at least this often in the month...
FLAG_MIN_CAP_HITS = 5
# ...and in at least this share of their queue visits, in percent: rare bad luck is no pattern.
FLAG_MIN_CAP_PERCENT = Decimal(10)
ADVICE = "grow the team or spread the calls over more numbers"  # the policy's, for a flagged customer
