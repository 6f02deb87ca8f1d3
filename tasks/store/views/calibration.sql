-- Calibration per judge model: AI labels on pairs with a decisive human majority, binned by
-- confidence (greatest(p_a, 1 - p_a)) into 0.5-0.6 ... 0.9-1.0 (1.0 in the last bin).
--
-- Columns:
--   judge_model: the judge model
--   bin: the confidence range, e.g. '0.6-0.7'
--   labels: labels in the bin
--   mean_confidence: their mean confidence
--   accuracy: the share matching the human majority
--   gap: mean_confidence - accuracy (positive: overconfident)
create view calibration as
select judge_model,
       printf('%.1f-%.1f', confidence_bin / 10, (confidence_bin + 1) / 10) as bin,
       labels,
       round(mean_confidence, 4) as mean_confidence,
       round(accuracy, 4) as accuracy,
       round(mean_confidence - accuracy, 4) as gap
from calibration_bins
order by judge_model, confidence_bin;
