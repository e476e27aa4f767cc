# The Airflow image of docker-compose.yaml: the official image plus this project's packages and code,
# installed once at build time (not at every container start).
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /opt/airflow/requirements.txt

COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root include /opt/airflow/include

# The DAG files import erp_agents (plugins/) and include.* (the ERP tools and the simulator).
ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
# dumb-init signals only its child: a Celery worker then shuts down warm (running tasks finish).
ENV DUMB_INIT_SETSID=0
