"""The change stream: the catalog at any instant, diffs between instants, live subscriptions'
feed and webhook delivery, all read from the change log (``metadata.store``'s history)."""
