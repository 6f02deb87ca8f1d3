-- Each flow run's latest state, with what it added. Newest first.
--
-- Columns:
--   run_id: the flow run
--   flow: the flow's name
--   started_at: when it started
--   finished_at: when it completed or failed (NULL while running, or if it died)
--   status: its latest status: 'started', 'completed' or 'failed'
--   rows_added: rows added per table, as recorded last
--   error: the error it failed with
create view run_summary as
select run_id, any_value(flow) as flow,
       min(created_at) as started_at,
       max(created_at) filter (where status <> 'started') as finished_at,
       arg_max(status, created_at) as status,
       arg_max(rows_added, created_at) as rows_added,
       arg_max(error, created_at) as error
from runs
group by run_id
order by started_at desc;
