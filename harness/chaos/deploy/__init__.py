"""Deploy activities: rolling restarts of replicas and rollbacks of builds that fail readiness."""
