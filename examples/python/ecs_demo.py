"""The Prefect ECS article's example flow, ported to Culvert: a pandas DataFrame built in
a task, the pandas version in the task run's log. Run it here, register it, and let an
agent (local, Docker or ECS) run it in an image that has Python, pandas and culvert:

    python3 ecs_demo.py run --param rows=5
    python3 ecs_demo.py register --project demo --storage s3://yourbucket/flows
    culvert run ecs_demo --project demo --watch
"""
import pandas as pd

import culvert
from culvert import Flow, Parameter, task


@task(retries=2, retry_delay=5)
def extract(rows: int) -> pd.DataFrame:
    logger = culvert.get_logger()
    logger.info("pandas version: %s", pd.__version__)
    df = pd.DataFrame({"id": range(rows), "amount": [i * 1.5 for i in range(rows)]})
    logger.info("extracted a DataFrame of %d rows", len(df))
    return df


@task(cache_for=3600)
def transform(df: pd.DataFrame) -> dict:
    return {"rows": int(len(df)), "total": float(df["amount"].sum())}


@task
def load(summary: dict) -> None:
    print(f"loaded {summary['rows']} rows, total amount {summary['total']}")


with Flow("ecs_demo", storage="s3://yourbucket/flows",
          run_config=culvert.EcsRun(image="yourrepo/culvert-pandas:1", cpu=512, memory=1024,
                                    labels=["fargate-dev", "s3-flow-storage"]),
          schedule=culvert.Cron("0 6 * * *", "Europe/Berlin")) as flow:
    rows = Parameter("rows", default=10)
    load(transform(extract(rows)))
    culvert.shell("report", "echo report done")

if __name__ == "__main__":
    culvert.main(flow)
