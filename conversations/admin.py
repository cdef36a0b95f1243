from django.contrib import admin

from conversations.models import ChannelIdentity, Contact, Conversation, Message, SystemPrompt


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ["__str__", "created_at"]
    search_fields = ["name", "identities__external_id"]
    date_hierarchy = "created_at"


@admin.register(ChannelIdentity)
class ChannelIdentityAdmin(admin.ModelAdmin):
    list_display = ["external_id", "channel", "page_id", "contact", "created_at"]
    list_filter = ["channel"]
    search_fields = ["external_id", "contact__name"]
    list_select_related = ["contact"]
    raw_id_fields = ["contact"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["__str__", "last_message_text", "last_activity_at", "bot_active"]
    list_filter = ["bot_active", "last_activity_at"]
    search_fields = ["identity__contact__name", "identity__external_id"]
    list_select_related = ["identity__contact"]
    raw_id_fields = ["identity", "bot_paused_by"]
    ordering = ["-last_activity_at"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "role", "status", "conversation", "created_at"]
    list_filter = ["role", "status", "created_at"]
    search_fields = ["text", "external_id"]
    list_select_related = ["conversation__identity__contact"]
    raw_id_fields = ["conversation", "reply_to", "sent_by"]


@admin.register(SystemPrompt)
class SystemPromptAdmin(admin.ModelAdmin):
    list_display = ["__str__", "created_by"]
