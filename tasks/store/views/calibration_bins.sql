-- Per judge model and confidence bin, unrounded: the AI labels on pairs with a decisive human
-- majority (ai_vs_human), how confident they were and how often they matched. The input of
-- calibration and calibration_error, which round.
--
-- Columns:
--   judge_model: the judge model
--   confidence_bin: the tenth the confidence falls in: 5 = [0.5, 0.6) ... 9 = [0.9, 1.0]
--   labels: labels in the bin
--   mean_confidence: their mean greatest(p_a, 1 - p_a)
--   accuracy: the share matching the human majority
create view calibration_bins as
select judge_model, confidence_bin, count(*) as labels,
       avg(ai_confidence) as mean_confidence, avg(correct::int) as accuracy
from ai_vs_human
group by judge_model, confidence_bin;
