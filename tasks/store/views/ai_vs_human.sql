-- Each AI label on a pair whose human majority is decisive ('first' or 'second'), without
-- texts: the input of the AI-human agreement, calibration and AI disagreement views.
--
-- Columns:
--   label_id: the AI label
--   pair_id: the pair
--   prompt_id: its conversation
--   judge_model: the judge model ('rules' for rule labels)
--   method: 'logprob', 'cot' or 'rule'
--   principle_id: the principle it judged under
--   ai_vote: the AI's vote: 'first', 'second' or 'tie' (responses in id order)
--   ai_confidence: greatest(p_a, 1 - p_a)
--   confidence_bin: the tenth the confidence falls in: 5 = [0.5, 0.6) ... 9 = [0.9, 1.0]
--   human_vote: the human majority vote (human_majority)
--   human_annotators: annotators behind it
--   correct: whether the AI vote matches it (an AI tie is a miss)
create view ai_vs_human as
select a.label_id, a.pair_id, a.prompt_id, a.judge_model, a.method, a.principle_id,
       a.vote as ai_vote,
       greatest(a.p_a, 1 - a.p_a) as ai_confidence,
       least(floor(round(greatest(a.p_a, 1 - a.p_a) * 10, 6)), 9)::integer as confidence_bin,
       h.majority_vote as human_vote,
       h.annotators as human_annotators,
       a.vote = h.majority_vote as correct
from ai_labels a join human_majority h on a.pair_id = h.pair_id
where h.majority_vote in ('first', 'second');
