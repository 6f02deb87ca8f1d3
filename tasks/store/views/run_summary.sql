-- Each flow run's latest state, with what it added and the process it ran in. Newest first.
--
-- Columns:
--   run_id: the flow run
--   flow: the flow's name
--   started_at: when it started
--   finished_at: when it completed, failed or was cancelled (NULL while running, or if it died)
--   status: 'completed', 'failed' or 'cancelled' (stopped by SIGINT, SIGTERM or a Prefect
--     cancellation); for a run that never closed: 'running' (its process is alive), 'died' (its
--     process is gone: killed, or its machine went down) or 'started' (begun on another machine,
--     or recorded before runs named their process: this machine cannot tell)
--   host: the machine its process ran on
--   pid: its process id there
--   rows_added: rows added per table, as recorded last
--   error: the error it failed with, or what cancelled it
create view run_summary as
with latest as (
    select run_id, any_value(flow) as flow,
           min(created_at) as started_at,
           max(created_at) filter (where status <> 'started') as finished_at,
           arg_max(status, created_at) as status,
           any_value(host) filter (where status = 'started') as host,
           any_value(pid) filter (where status = 'started') as pid,
           arg_max(rows_added, created_at) as rows_added,
           arg_max(error, created_at) as error
    from runs
    group by run_id
)
select latest.run_id, flow, started_at, finished_at,
       case
           when status <> 'started' then status
           when run_liveness.alive then 'running'
           when not run_liveness.alive then 'died'
           else 'started'
       end as status,
       host, pid, rows_added, error
from latest
left join run_liveness on run_liveness.run_id = latest.run_id
order by started_at desc;
