"""The payloads of the buttons the service answers itself, without the LLM.

One home: the Messenger profile's menu (manage.py messenger_profile) and the services'
quick replies send them, and the services answer them.
"""

GET_STARTED = "GET_STARTED"
# "Talk to a person": conversations.services.handoff hands the person to staff.
HUMAN_AGENT = "HUMAN_AGENT"
# "Delete my data": conversations.services.data_deletion asks to confirm, then deletes.
DELETE_MY_DATA = "DELETE_MY_DATA"
DELETE_MY_DATA_CONFIRM = "DELETE_MY_DATA_CONFIRM"
DELETE_MY_DATA_CANCEL = "DELETE_MY_DATA_CANCEL"
# "How did we do?" (conversations.services.csat): the person's rating of staff's help, 1 to 5.
CSAT_SCORES = {f"CSAT_{score}": score for score in range(1, 6)}
CSAT_1, CSAT_2, CSAT_3, CSAT_4, CSAT_5 = CSAT_SCORES
# The persistent menu that `messenger_profile apply` sets from settings: (title, payload).
MENU = (("Talk to a person", HUMAN_AGENT), ("Delete my data", DELETE_MY_DATA))
