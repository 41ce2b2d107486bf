-- Most fraud_enrolments rows belong to members whose enrolment HQ has not
-- seen (a sale's counts only): no mobile, no card tokens. Every one of them
-- put an empty key into the mobile index and a placeholder into the card
-- token index, which no lookup ever asks for (FraudRelated looks for given
-- mobiles and tokens; none is empty). The indexes now hold only rows with a
-- mobile or with tokens.
DROP INDEX fraud_enrolments_mobile;
CREATE INDEX fraud_enrolments_mobile ON fraud_enrolments (mobile) WHERE mobile <> '';
DROP INDEX fraud_enrolments_cards;
CREATE INDEX fraud_enrolments_cards ON fraud_enrolments USING gin (card_tokens) WHERE card_tokens <> '{}';
