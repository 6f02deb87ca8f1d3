-- Position bias per judge model and method, over labels judged in both orders (rules excluded).
--
-- Columns:
--   judge_model: the judge model
--   method: 'logprob' or 'cot'
--   labels: labels judged in both orders
--   consistent_rate: the share whose two orders prefer the same response
--   first_position_rate: the share that preferred whichever response was shown first in both
--     orders (p_a_first > 0.5 and p_a_second < 0.5)
--   second_position_rate: the share that preferred whichever was shown second in both orders
--   mean_abs_order_gap: the mean |p_a_first - p_a_second|
create view position_consistency as
select judge_model, method, count(*) as labels,
       round(avg(orders_agree::int), 4) as consistent_rate,
       round(avg((p_a_first > 0.5 and p_a_second < 0.5)::int), 4) as first_position_rate,
       round(avg((p_a_first < 0.5 and p_a_second > 0.5)::int), 4) as second_position_rate,
       round(avg(abs(p_a_first - p_a_second)), 4) as mean_abs_order_gap
from ai_labels
where p_a_first is not null and p_a_second is not null and method <> 'rule'
group by judge_model, method
order by judge_model, method;
