"""Deploy verbs on the ECS service: one module per verb, each with its request at the top.

    deploy.py    a new image: a new revision, then a followed rolling update
    reload.py    a forced new deployment of the running revision
    rollback.py  back to the previous (or a given) revision
    release.py   migrate every tenant with a new revision, deploy it if they all succeeded
    status.py    the service, its deployments and recent events
    rollout.py   start a deployment, follow it, roll back on failure (shared by the verbs)
    model.py     what a deployment looks like and the rule that judges it (no AWS calls)
    gateway.py   the thin ECS client: the calls, nothing decided there

Nothing here imports boto3 or click at import time.
"""
