variable "greeter_command" {
  description = "Absolute path of the greeter binary (go build -o bin/greeter ./examples/greeter)."
  type        = string
}

variable "greeter_1_version" {
  description = "The greeter 1.x version to run. Change it (e.g. to 1.1.0) to upgrade 1.x clients make-before-break."
  type        = string
  default     = "1.0.0"
}
