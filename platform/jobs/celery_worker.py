"""The celery app the workers run: ``celery -A data_platform.jobs.celery_worker worker``.

It is dagster-celery's own app (the same tasks, queue, priorities and defaults) with the broker
and the result backend read from the environment when the worker starts:
`DATA_PLATFORM_CELERY_BROKER_URL` and `DATA_PLATFORM_CELERY_BACKEND_URL` (default ``rpc://``),
the variables the runs' executor reads. ``dagster-celery worker start -y <yaml>`` would instead
resolve the broker URL, password included, into a Python file under
``$DAGSTER_HOME/dagster_celery/config/`` for the worker to import; this app writes nothing.
"""

import os

from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task

from data_platform.jobs import CELERY_BACKEND_ENV, CELERY_BROKER_ENV

if not os.environ.get(CELERY_BROKER_ENV):
    raise RuntimeError(f"the celery worker needs {CELERY_BROKER_ENV} (e.g. amqp://user:password@host:5672//)")

app = make_app()  # dagster_celery.defaults: queue, priorities, prefetch, transport retries
app.conf.broker_url = os.environ[CELERY_BROKER_ENV]
app.conf.result_backend = os.environ.get(CELERY_BACKEND_ENV) or "rpc://"

execute_plan = create_task(app)
execute_job = create_execute_job_task(app)
resume_job = create_resume_job_task(app)
