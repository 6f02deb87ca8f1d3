-- Expected calibration error per judge model, over the calibration view's bins.
--
-- Columns:
--   judge_model: the judge model
--   labels: the labels it rests on
--   ece: the label-weighted mean of |mean_confidence - accuracy| (0 = perfectly calibrated)
create view calibration_error as
select judge_model, sum(labels)::bigint as labels,
       round(sum(labels * abs(mean_confidence - accuracy)) / sum(labels), 4) as ece
from calibration_bins
group by judge_model
order by judge_model;
