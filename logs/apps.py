from django.apps import AppConfig


class LogsConfig(AppConfig):
    name = "logs"
    verbose_name = "Logs"

    def ready(self) -> None:
        # accounts collects a person's data and must not import logs, so logs registers
        # its part (imported here, once the models are loaded).
        from accounts.privacy_sections import privacy_section_register
        from logs.privacy import request_logs_erase, request_logs_export

        privacy_section_register(
            name="request_logs", export=request_logs_export, erase=request_logs_erase
        )
