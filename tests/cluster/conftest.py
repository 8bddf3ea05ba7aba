"""The cluster suite's Redis Cluster and Sentinel group are the shared fixtures of
``tests/support`` (``redis_cluster``, ``own_cluster``, ``sentinel_group``,
``own_sentinel_group``): ``redis-server`` processes on free loopback ports. Without
``redis-server`` and ``redis-cli`` the tests are skipped; under ``CI=true`` they fail."""
